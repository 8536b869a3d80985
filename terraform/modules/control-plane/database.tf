# PostgreSQL for several control-plane replicas: RDS, Multi-AZ, encrypted with the module's
# KMS key, reachable only from the given security groups (the EKS cluster's), never public.
# The password is generated here and kept in Secrets Manager (encrypted with the KMS key) with
# the connection URL; the control plane reads the URL from the Kubernetes Secret
# bosun-database. Both pass through the Terraform state: keep the state in an encrypted,
# access-controlled backend, as for the secret key. Change the password by tainting
# random_password.database and applying (RDS-managed rotation would change it under the
# running replicas, so it is not used).

locals {
  replicated = var.replicas > 1
  db_enabled = var.database != null
}

resource "aws_db_subnet_group" "this" {
  count      = local.db_enabled ? 1 : 0
  name       = "bosun-control-plane"
  subnet_ids = var.database.subnet_ids
}

resource "aws_security_group" "database" {
  count       = local.db_enabled ? 1 : 0
  name        = "bosun-control-plane-database"
  description = "PostgreSQL of the Bosun control plane: reachable from the EKS cluster only"
  vpc_id      = var.database.vpc_id
  ingress {
    description     = "PostgreSQL from the control plane's cluster"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = var.database.allowed_security_group_ids
  }
}

resource "aws_db_parameter_group" "this" {
  count  = local.db_enabled ? 1 : 0
  name   = "bosun-control-plane"
  family = "postgres${split(".", var.database.engine_version)[0]}"
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
}

resource "aws_iam_role" "rds_monitoring" {
  count = local.db_enabled ? 1 : 0
  name  = "bosun-control-plane-rds-monitoring"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "monitoring.rds.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  count      = local.db_enabled ? 1 : 0
  role       = aws_iam_role.rds_monitoring[0].name
  policy_arn = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "this" {
  # checkov:skip=CKV_AWS_133: backups are kept var.database.backup_retention_days (default 7, validated at least 1); checkov cannot resolve the optional attribute
  count                               = local.db_enabled ? 1 : 0
  identifier                          = "bosun-control-plane"
  engine                              = "postgres"
  engine_version                      = var.database.engine_version
  instance_class                      = var.database.instance_class
  allocated_storage                   = var.database.allocated_storage_gb
  max_allocated_storage               = var.database.allocated_storage_gb * 4
  storage_type                        = "gp3"
  db_name                             = "bosun"
  username                            = "bosun"
  password                            = random_password.database[0].result
  multi_az                            = true
  storage_encrypted                   = true
  kms_key_id                          = var.kms_key_arn
  publicly_accessible                 = false
  db_subnet_group_name                = aws_db_subnet_group.this[0].name
  vpc_security_group_ids              = [aws_security_group.database[0].id]
  parameter_group_name                = aws_db_parameter_group.this[0].name
  backup_retention_period             = var.database.backup_retention_days
  copy_tags_to_snapshot               = true
  deletion_protection                 = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "bosun-control-plane-final"
  auto_minor_version_upgrade          = true
  iam_database_authentication_enabled = true
  performance_insights_enabled        = true
  performance_insights_kms_key_id     = var.kms_key_arn
  monitoring_interval                 = 30
  monitoring_role_arn                 = aws_iam_role.rds_monitoring[0].arn
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]
}

resource "random_password" "database" {
  count   = local.db_enabled ? 1 : 0
  length  = 40
  special = false
}

resource "aws_secretsmanager_secret" "database" {
  # checkov:skip=CKV2_AWS_57: automatic rotation would change the password under the running replicas; rotate through Terraform
  count                   = local.db_enabled ? 1 : 0
  name                    = "bosun-control-plane/database"
  description             = "PostgreSQL of the Bosun control plane (username, password, URL)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
}

locals {
  database_url = local.db_enabled ? format(
    "postgres://%s@%s:%d/bosun?sslmode=verify-full",
    join(":", ["bosun", random_password.database[0].result]),
    aws_db_instance.this[0].address,
    aws_db_instance.this[0].port,
  ) : ""
}

resource "aws_secretsmanager_secret_version" "database" {
  count     = local.db_enabled ? 1 : 0
  secret_id = aws_secretsmanager_secret.database[0].id
  secret_string = jsonencode({
    username = "bosun"
    password = random_password.database[0].result
    host     = aws_db_instance.this[0].address
    port     = aws_db_instance.this[0].port
    url      = local.database_url
  })
}

resource "kubernetes_secret_v1" "database" {
  count = local.db_enabled ? 1 : 0
  metadata {
    name      = "bosun-database"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  data = { url = local.database_url }
}

resource "kubernetes_secret_v1" "database_ca" {
  count = local.db_enabled ? 1 : 0
  metadata {
    name      = "bosun-database-ca"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  data = { "ca.pem" = var.database_ca_pem }
}
