output "admin_endpoint" {
  description = "Admin API (bosun CLI, grpcurl)."
  value       = "https://${var.hostname}:7443"
}

output "agent_endpoint" {
  description = "Agent API (mTLS), for --control-plane."
  value       = "https://${var.hostname}:7444"
}

output "join_endpoint" {
  description = "Join endpoint, for --join-url."
  value       = "https://${var.hostname}:7445"
}

output "load_balancer_hostname" {
  description = "The NLB's DNS name (point the hostname at it when Route53 is not managed here)."
  value       = aws_lb.this.dns_name
}

output "fetch_ca_command" {
  description = "Prints the CA bundle agents and the CLI trust (the CA is created by the control plane; its key never leaves the volume)."
  value       = "kubectl -n ${var.namespace} exec bosun-control-plane-0 -- cat /var/lib/bosun/ca-bundle.pem"
}

output "database_secret_arn" {
  description = "Secrets Manager secret holding the database's username, password and URL (empty without a database)."
  value       = try(aws_secretsmanager_secret.database[0].arn, "")
}

output "fetch_admin_token_command" {
  description = "Prints the first admin token (kept out of the Terraform state). Create personal credentials with `bosun credential create` and delete nothing you did not create."
  value       = "kubectl -n ${var.namespace} exec bosun-control-plane-0 -- cat /var/lib/bosun/admin-token"
}
