variable "name" {
  description = "Cluster name."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,38}$", var.name))
    error_message = "name must be 2-39 lowercase letters, digits or '-', starting with a letter."
  }
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.33"
  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version looks like 1.33."
  }
}

variable "vpc_id" {
  description = "VPC of the cluster."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the control plane ENIs and the nodes (two zones or more)."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "endpoint_public_access" {
  description = "Whether the Kubernetes API is reachable from the internet (false: private endpoint only)."
  type        = bool
  default     = false
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to the public API endpoint when it is enabled."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for c in var.public_access_cidrs : can(cidrnetmask(c))])
    error_message = "public_access_cidrs must be IPv4 CIDRs."
  }
}

variable "node_instance_types" {
  description = "Instance types of the managed node group."
  type        = list(string)
  default     = ["m6i.large"]
}

variable "node_count" {
  description = "Desired, minimum and maximum node counts."
  type        = object({ desired = number, min = number, max = number })
  default     = { desired = 2, min = 2, max = 4 }
  validation {
    condition     = var.node_count.min <= var.node_count.desired && var.node_count.desired <= var.node_count.max && var.node_count.min >= 1
    error_message = "node_count needs 1 <= min <= desired <= max."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts Kubernetes Secrets (envelope encryption) and the control plane log group."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the EKS control plane logs (days)."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "admin_principal_arns" {
  description = "IAM roles or users given cluster-admin through EKS access entries, besides the identity running Terraform."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/", a))])
    error_message = "admin_principal_arns are IAM role or user ARNs (arn:aws:iam::123456789012:role/name)."
  }
}

variable "addon_versions" {
  description = "Pinned versions of the managed add-ons by name (vpc-cni, coredns, kube-proxy, eks-pod-identity-agent, aws-ebs-csi-driver); unset ones use EKS's default for the Kubernetes version."
  type        = map(string)
  default     = {}
}
