# One customer-managed key, rotated yearly, for EKS Secrets, EBS volumes and log groups.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

locals {
  # The Auto Scaling service-linked role (created by AWS on first use in the account).
  autoscaling_role = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
}

data "aws_iam_policy_document" "key" {
  # A key policy's "*" resource means this key only; the account root statement is the
  # default key policy, which delegates access control to IAM.
  # checkov:skip=CKV_AWS_109: key policy: "*" is the key itself; administration stays with the account (default key policy)
  # checkov:skip=CKV_AWS_111: same reason
  # checkov:skip=CKV_AWS_356: same reason
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  # Managed node groups launch through Auto Scaling, whose service-linked role must use the
  # key for the encrypted root volumes (else instances fail to launch with
  # Client.InvalidKMSKey.InvalidState), and may create grants only for AWS resources.
  statement {
    sid       = "AutoScalingUsesKey"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.autoscaling_role]
    }
  }
  statement {
    sid       = "AutoScalingGrantsForAwsResources"
    actions   = ["kms:CreateGrant"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = [local.autoscaling_role]
    }
    condition {
      test     = "Bool"
      variable = "kms:GrantIsForAWSResource"
      values   = ["true"]
    }
  }
  statement {
    sid       = "CloudWatchLogsEncrypt"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${data.aws_region.current.name}.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:aws:logs:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:*"]
    }
  }
}

resource "aws_kms_key" "this" {
  description             = "Bosun: EKS secrets, EBS volumes, logs (${var.name})"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}
