variable "cluster_name" {
  description = "The name this cluster was registered with (`bosun cluster add NAME`)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.cluster_name))
    error_message = "cluster_name must be a DNS label."
  }
}

variable "control_plane_host" {
  description = "DNS name of the control plane (its agent and join ports are 7444 and 7445)."
  type        = string
}

variable "ca_pem" {
  description = "The control plane's CA bundle (not secret): output fetch_ca_command of the control-plane module."
  type        = string
  validation {
    condition     = can(regex("-----BEGIN CERTIFICATE-----", var.ca_pem))
    error_message = "ca_pem must hold a PEM certificate."
  }
}

variable "join_token" {
  description = "A registration token from `bosun cluster registration-token create NAME --ttl 2h` (brt_…: one for every spoke, reusable until it expires; each agent registers cluster_name and gets its own certificate), or a single-use join token from `bosun cluster add NAME` (bjt_…). Needed only until the agent has joined; nothing long-lived. Sensitive."
  type        = string
  sensitive   = true
  validation {
    condition     = can(regex("^b[jr]t_[0-9a-f]+$", var.join_token))
    error_message = "join_token looks like brt_… (`bosun cluster registration-token create NAME -o json`) or bjt_… (`bosun cluster add NAME -o json`)."
  }
}

variable "image" {
  description = "Agent image (docker/agent.Dockerfile), pinned by tag or digest."
  type        = string
  default     = "ghcr.io/bosun-dev/bosun-agent:0.1.0"
  validation {
    condition     = !endswith(var.image, ":latest") && length(regexall(":", var.image)) > 0
    error_message = "pin the image to a version or digest (not :latest)."
  }
}

variable "namespace" {
  description = "Namespace of the agent."
  type        = string
  default     = "bosun-agent"
}

variable "namespaces" {
  description = "Empty: the agent manages the whole cluster (a ClusterRole with every verb, as Argo CD's controller). Otherwise a namespaced install: it watches and manages only these namespaces (a Role in each, no cluster-wide permission); cluster-scoped objects in Git fail their Application."
  type        = list(string)
  default     = []
}

variable "storage_class" {
  description = "Storage class of the agent's state volume (credentials and last desired state). Empty: the module creates bosun-agent-gp3 (EBS CSI, gp3, encrypted), since a fresh EKS cluster has no gp3 class."
  type        = string
  default     = ""
}

variable "kms_key_arn" {
  description = "KMS key for the volumes of the storage class the module creates (empty: the account's default EBS key)."
  type        = string
  default     = ""
}
