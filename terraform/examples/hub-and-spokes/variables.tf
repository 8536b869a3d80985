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

variable "agent_image" {
  description = "Agent image, pinned."
  type        = string
  default     = "ghcr.io/bosun-dev/bosun-agent:0.1.0"
}

variable "ca_pem" {
  description = "The control plane's CA bundle (second apply): `kubectl exec` command from the fetch_ca_command output."
  type        = string
  default     = ""
}

variable "registration_token" {
  description = "One registration token for both spokes (second apply): `bosun cluster registration-token create spokes --ttl 2h -o json`. Each spoke's agent registers its own cluster name with it and gets its own certificate; it expires on its own. Sensitive."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.registration_token == "" || can(regex("^brt_[0-9a-f]+$", var.registration_token))
    error_message = "registration_token looks like brt_… (from `bosun cluster registration-token create NAME -o json`)."
  }
}
