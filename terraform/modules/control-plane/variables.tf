variable "namespace" {
  description = "Namespace of the control plane."
  type        = string
  default     = "bosun-system"
}

variable "image" {
  description = "Control plane image (docker/control-plane.Dockerfile), pinned by tag or digest."
  type        = string
  default     = "ghcr.io/bosun-dev/bosun-control-plane:0.1.0"
  validation {
    condition     = !endswith(var.image, ":latest") && length(regexall(":", var.image)) > 0
    error_message = "pin the image to a version or digest (not :latest)."
  }
}

variable "hostname" {
  description = "DNS name agents and people use (in the server certificate and Route53)."
  type        = string
  validation {
    condition     = can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.hostname))
    error_message = "hostname must be a fully qualified DNS name such as bosun.example.com."
  }
}

variable "route53_zone_id" {
  description = "Hosted zone for the hostname record; empty to manage DNS elsewhere."
  type        = string
  default     = ""
}

variable "allowed_cidrs" {
  description = "Source CIDRs allowed to reach the load balancer (agents' NAT addresses, offices, CI)."
  type        = list(string)
  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for c in var.allowed_cidrs : can(cidrnetmask(c))])
    error_message = "give at least one IPv4 CIDR."
  }
}

variable "storage_size" {
  description = "Size of the data volume (embedded store, Git cache)."
  type        = string
  default     = "20Gi"
  validation {
    condition     = can(regex("^[0-9]+Gi$", var.storage_size))
    error_message = "storage_size looks like 20Gi."
  }
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the EBS data volume."
  type        = string
}

variable "cert_validity" {
  description = "Lifetime of agent certificates (agents renew at two thirds)."
  type        = string
  default     = "24h"
}

variable "webhook_secret" {
  description = "Shared secret for GitHub/GitLab webhooks; empty disables webhooks. Sensitive: it ends up in the state."
  type        = string
  default     = ""
  sensitive   = true
}

variable "resources" {
  description = "CPU/memory requests and memory limit."
  type        = object({ cpu = string, memory = string, memory_limit = string })
  default     = { cpu = "500m", memory = "512Mi", memory_limit = "4Gi" }
}

variable "replicas" {
  description = "Control-plane replicas. 1 keeps the state in the embedded store on an EBS volume; more than 1 needs `database` (they share one PostgreSQL) and the Secrets bosun-ca and bosun-admin-token (see README, AWS)."
  type        = number
  default     = 1
  validation {
    condition     = var.replicas >= 1 && var.replicas <= 9 && floor(var.replicas) == var.replicas
    error_message = "replicas is a whole number from 1 to 9."
  }
}

variable "database" {
  description = "RDS PostgreSQL for several replicas: the VPC and private subnets it lives in, the security groups allowed to reach it (the EKS cluster's), its size. null: no database (one replica on the embedded store)."
  type = object({
    vpc_id                     = string
    subnet_ids                 = list(string)
    allowed_security_group_ids = list(string)
    instance_class             = optional(string, "db.t4g.medium")
    allocated_storage_gb       = optional(number, 50)
    engine_version             = optional(string, "15")
    backup_retention_days      = optional(number, 7)
  })
  default = null
  validation {
    condition     = var.database == null || try(length(var.database.subnet_ids) >= 2, false)
    error_message = "the database needs private subnets in at least two availability zones (Multi-AZ)."
  }
  validation {
    condition     = var.database == null || try(var.database.backup_retention_days >= 1, false)
    error_message = "keep database backups at least one day."
  }
}

variable "database_ca_pem" {
  description = "CA bundle the control plane verifies the database with (RDS's: https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem). Public, not secret."
  type        = string
  default     = ""
}

variable "load_balancer" {
  description = "Where the Network Load Balancer Terraform manages goes: the VPC, its public subnets, the nodes' security group and Auto Scaling groups (its targets, on fixed node ports). No AWS Load Balancer Controller is needed."
  type = object({
    vpc_id                  = string
    public_subnet_ids       = list(string)
    node_security_group_id  = string
    node_autoscaling_groups = list(string)
  })
  validation {
    condition     = length(var.load_balancer.public_subnet_ids) > 0 && length(var.load_balancer.node_autoscaling_groups) > 0
    error_message = "load_balancer needs at least one public subnet and one node Auto Scaling group."
  }
}

