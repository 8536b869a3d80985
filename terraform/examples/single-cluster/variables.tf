variable "name" {
  description = "Name prefix."
  type        = string
  default     = "bosun"
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_cidr" {
  description = "CIDR of the hub VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "hostname" {
  description = "DNS name of the control plane, e.g. bosun.example.com."
  type        = string
}

variable "route53_zone_id" {
  description = "Hosted zone that holds hostname (empty: create the DNS record yourself from the load_balancer_hostname output)."
  type        = string
  default     = ""
}

variable "allowed_cidrs" {
  description = "Who may reach the control plane's load balancer: your agents' egress (NAT) addresses, your office, CI."
  type        = list(string)
}

variable "api_access_cidrs" {
  description = "CIDRs allowed to the hub's Kubernetes API endpoint (empty: private endpoint only; run Terraform from inside the VPC)."
  type        = list(string)
  default     = []
}

variable "control_plane_image" {
  description = "Control plane image, pinned."
  type        = string
  default     = "ghcr.io/bosun-dev/bosun-control-plane:0.1.0"
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "control_plane_replicas" {
  description = "Control-plane replicas: 1 on the embedded store, or 3 (for example) on RDS PostgreSQL, which this example then creates."
  type        = number
  default     = 1
}

variable "database_ca_pem" {
  description = "RDS's CA bundle (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem), with more than one replica."
  type        = string
  default     = ""
}
