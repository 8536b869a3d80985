output "admin_endpoint" {
  description = "For `bosun --server` and grpcurl."
  value       = module.control_plane.admin_endpoint
}

output "agent_endpoint" {
  description = "For agents' --control-plane."
  value       = module.control_plane.agent_endpoint
}

output "load_balancer_hostname" {
  description = "Point var.hostname here when Route53 is not managed by this configuration."
  value       = module.control_plane.load_balancer_hostname
}

output "fetch_ca_command" {
  description = "Prints the CA bundle to trust (--ca-file); run with the hub's kubeconfig (aws eks update-kubeconfig --name <name>-hub)."
  value       = module.control_plane.fetch_ca_command
}

output "fetch_admin_token_command" {
  description = "Prints the first admin token (never in the Terraform state)."
  value       = module.control_plane.fetch_admin_token_command
}
