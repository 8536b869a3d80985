# A hub running the control plane and two spoke EKS clusters running agents. Two applies:
#   1. terraform apply                      # VPCs, clusters, the control plane
#   2. fetch the CA and create one registration token for the spokes (README "Deploy on
#      AWS"), then terraform apply -var-file=agents.tfvars   # ca_pem, registration_token
# Spokes only dial out to the hub; the hub holds no credential of theirs.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.75, < 7.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 2.30"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.5"
    }
  }
}

provider "aws" {
  region = var.region
}

data "aws_availability_zones" "available" {
  # checkov:skip=CKV_AWS_394: the first three zones by name are used (slice below); a zone added later sorts after them and changes nothing
  state = "available"
}

locals {
  tags = merge(var.tags, { "app.kubernetes.io/part-of" = "bosun" })
  azs  = slice(data.aws_availability_zones.available.names, 0, 3)
  clusters = {
    hub     = { cidr = "10.40.0.0/16" }
    spoke-1 = { cidr = "10.41.0.0/16" }
    spoke-2 = { cidr = "10.42.0.0/16" }
  }
}

# One key per cluster: a key's compromise or a mistaken policy touches one cluster only.
module "kms" {
  source   = "../../modules/kms"
  for_each = local.clusters
  name     = "${var.name}-${each.key}"
  tags     = local.tags
}

module "network" {
  source             = "../../modules/network"
  for_each           = local.clusters
  name               = "${var.name}-${each.key}"
  cidr               = each.value.cidr
  azs                = local.azs
  single_nat_gateway = each.key != "hub"
  kms_key_arn        = module.kms[each.key].arn
  tags               = local.tags
}

module "eks" {
  source                 = "../../modules/eks"
  for_each               = local.clusters
  name                   = "${var.name}-${each.key}"
  vpc_id                 = module.network[each.key].vpc_id
  subnet_ids             = module.network[each.key].private_subnet_ids
  endpoint_public_access = length(var.api_access_cidrs) > 0
  public_access_cidrs    = var.api_access_cidrs
  kms_key_arn            = module.kms[each.key].arn
  tags                   = local.tags
}

provider "kubernetes" {
  alias                  = "hub"
  host                   = module.eks["hub"].endpoint
  cluster_ca_certificate = base64decode(module.eks["hub"].ca_data)
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.eks["hub"].name, "--region", var.region]
  }
}

provider "kubernetes" {
  alias                  = "spoke_1"
  host                   = module.eks["spoke-1"].endpoint
  cluster_ca_certificate = base64decode(module.eks["spoke-1"].ca_data)
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.eks["spoke-1"].name, "--region", var.region]
  }
}

provider "kubernetes" {
  alias                  = "spoke_2"
  host                   = module.eks["spoke-2"].endpoint
  cluster_ca_certificate = base64decode(module.eks["spoke-2"].ca_data)
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.eks["spoke-2"].name, "--region", var.region]
  }
}

module "control_plane" {
  source          = "../../modules/control-plane"
  providers       = { kubernetes = kubernetes.hub }
  hostname        = var.hostname
  route53_zone_id = var.route53_zone_id
  # The spokes reach the hub from their NAT gateways' addresses.
  allowed_cidrs = concat(var.allowed_cidrs, [for ip in module.network["spoke-1"].nat_public_ips : "${ip}/32"], [for ip in module.network["spoke-2"].nat_public_ips : "${ip}/32"])
  kms_key_arn   = module.kms["hub"].arn
  image         = var.control_plane_image
  load_balancer = {
    vpc_id                  = module.network["hub"].vpc_id
    public_subnet_ids       = module.network["hub"].public_subnet_ids
    node_security_group_id  = module.eks["hub"].node_security_group_id
    node_autoscaling_groups = module.eks["hub"].node_autoscaling_group_names
  }
  depends_on = [module.eks]
}

module "agent_spoke_1" {
  source             = "../../modules/agent"
  count              = var.registration_token == "" ? 0 : 1
  providers          = { kubernetes = kubernetes.spoke_1 }
  cluster_name       = "spoke-1"
  control_plane_host = var.hostname
  ca_pem             = var.ca_pem
  join_token         = var.registration_token
  image              = var.agent_image
  kms_key_arn        = module.kms["spoke-1"].arn
}

module "agent_spoke_2" {
  source             = "../../modules/agent"
  count              = var.registration_token == "" ? 0 : 1
  providers          = { kubernetes = kubernetes.spoke_2 }
  cluster_name       = "spoke-2"
  control_plane_host = var.hostname
  ca_pem             = var.ca_pem
  join_token         = var.registration_token
  image              = var.agent_image
  kms_key_arn        = module.kms["spoke-2"].arn
}
