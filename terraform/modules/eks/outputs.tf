output "name" {
  description = "Cluster name."
  value       = aws_eks_cluster.this.name
}

output "endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "ca_data" {
  description = "Base64 PEM CA of the Kubernetes API (not secret)."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "node_security_group_id" {
  description = "Security group EKS created for the cluster and its nodes."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "node_autoscaling_group_names" {
  description = "Auto Scaling groups of the managed node group (load balancer target groups attach to them)."
  value       = aws_eks_node_group.default.resources[0].autoscaling_groups[*].name
}
