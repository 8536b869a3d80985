# The hub alone: a VPC, an EKS cluster and the Bosun control plane behind an NLB. Agents in
# other clusters (EKS, Kind, anywhere with outbound access) join it; see ../hub-and-spokes.

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
}

module "kms" {
  source = "../../modules/kms"
  name   = "${var.name}-hub"
  tags   = local.tags
}

module "network" {
  source      = "../../modules/network"
  name        = "${var.name}-hub"
  cidr        = var.vpc_cidr
  azs         = local.azs
  kms_key_arn = module.kms.arn
  tags        = local.tags
}

module "eks" {
  source                 = "../../modules/eks"
  name                   = "${var.name}-hub"
  vpc_id                 = module.network.vpc_id
  subnet_ids             = module.network.private_subnet_ids
  endpoint_public_access = length(var.api_access_cidrs) > 0
  public_access_cidrs    = var.api_access_cidrs
  kms_key_arn            = module.kms.arn
  tags                   = local.tags
}

provider "kubernetes" {
  host                   = module.eks.endpoint
  cluster_ca_certificate = base64decode(module.eks.ca_data)
  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.eks.name, "--region", var.region]
  }
}

module "control_plane" {
  source          = "../../modules/control-plane"
  hostname        = var.hostname
  route53_zone_id = var.route53_zone_id
  allowed_cidrs   = var.allowed_cidrs
  kms_key_arn     = module.kms.arn
  image           = var.control_plane_image
  load_balancer = {
    vpc_id                  = module.network.vpc_id
    public_subnet_ids       = module.network.public_subnet_ids
    node_security_group_id  = module.eks.node_security_group_id
    node_autoscaling_groups = module.eks.node_autoscaling_group_names
  }
  # Several replicas share one RDS PostgreSQL in the private subnets, reachable from the nodes.
  replicas        = var.control_plane_replicas
  database_ca_pem = var.database_ca_pem
  database = var.control_plane_replicas > 1 ? {
    vpc_id                     = module.network.vpc_id
    subnet_ids                 = module.network.private_subnet_ids
    allowed_security_group_ids = [module.eks.node_security_group_id]
  } : null
  depends_on = [module.eks]
}
