output "namespace" {
  description = "Namespace the agent runs in."
  value       = kubernetes_namespace_v1.this.metadata[0].name
}

output "check_command" {
  description = "Shows whether the agent joined and is connected (run against the control plane)."
  value       = "bosun cluster get ${var.cluster_name}"
}
