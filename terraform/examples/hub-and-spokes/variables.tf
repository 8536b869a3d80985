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

variable "join_tokens" {
  description = "Join tokens by spoke name (second apply): `bosun cluster add spoke-1 -o json`. Sensitive; single-use, expire in 1 h."
  type        = map(string)
  default     = {}
  sensitive   = true
  validation {
    condition     = alltrue([for k in keys(var.join_tokens) : contains(["spoke-1", "spoke-2"], k)])
    error_message = "join_tokens keys are spoke-1 and spoke-2."
  }
}
