output "vpc_id" {
  description = "ID of the VPC."
  value       = aws_vpc.this.id
}

output "private_subnet_ids" {
  description = "Private subnets (EKS nodes), one per zone."
  value       = [for s in aws_subnet.private : s.id]
}

output "public_subnet_ids" {
  description = "Public subnets (internet-facing load balancers), one per zone."
  value       = [for s in aws_subnet.public : s.id]
}

output "nat_public_ips" {
  description = "Public addresses of the NAT gateways (what the internet sees of this VPC's egress)."
  value       = [for e in aws_eip.nat : e.public_ip]
}
