# The Bosun control plane on EKS: one replica with an encrypted gp3 volume (the embedded
# store), or `replicas` of them on RDS PostgreSQL (database.tf), behind a Network
# Load Balancer with plain TCP listeners — TLS passes through, so agents' mutual TLS reaches
# the control plane (an ACM certificate would terminate TLS at the load balancer and break
# mTLS, so none is used). It needs no Kubernetes permissions.

locals {
  labels = {
    "app.kubernetes.io/name"    = "bosun-control-plane"
    "app.kubernetes.io/part-of" = "bosun"
  }
  # The listeners reached from outside the cluster (through the load balancer), and the
  # metrics and probes listener, which stays inside it (kubelet probes, Prometheus).
  ports        = { admin = 7443, agent = 7444, join = 7445, webhook = 7446, ui = 7447 }
  metrics_port = 7448
  tags         = local.labels
  # Fixed node ports the load balancer's target groups forward to: 30043–30047 for 7443–7447
  # (inside Kubernetes' default node port range, 30000–32767).
  node_ports = { for k, p in local.ports : k => 30000 + p - 7400 }
  args = concat([
    "--data-dir=/var/lib/bosun",
    "--admin-addr=0.0.0.0:7443",
    "--agent-addr=0.0.0.0:7444",
    "--join-addr=0.0.0.0:7445",
    "--webhook-addr=0.0.0.0:7446",
    "--metrics-addr=0.0.0.0:${local.metrics_port}",
    "--ui-addr=0.0.0.0:7447",
    "--server-name=${var.hostname}",
    "--server-name=bosun-control-plane.${var.namespace}.svc",
    "--secret-key-file=/etc/bosun/secret-key/key",
    "--cert-validity=${var.cert_validity}",
    "--log-format=json",
    ], var.webhook_secret == "" ? [] : ["--webhook-secret-file=/etc/bosun/webhook/secret"],
    # Replicas share the CA and the first admin token (Secrets made out of band, so that their
    # keys stay out of the Terraform state), and the database (its URL from bosun-database).
    local.replicated ? [
      "--ca-cert=/etc/bosun/ca/tls.crt",
      "--ca-key=/etc/bosun/ca/tls.key",
      "--initial-admin-token-file=/etc/bosun/admin/token",
    ] : [],
    local.db_enabled ? [
      "--database-url-file=/etc/bosun/database/url",
      "--database-ca-file=/etc/bosun/database-ca/ca.pem",
    ] : [],
  )
  # Secrets mounted besides the secret key: name → mount path.
  replica_secrets = merge(
    local.replicated ? { "bosun-ca" = "/etc/bosun/ca", "bosun-admin-token" = "/etc/bosun/admin" } : {},
    local.db_enabled ? { "bosun-database" = "/etc/bosun/database", "bosun-database-ca" = "/etc/bosun/database-ca" } : {},
  )
}

resource "kubernetes_namespace_v1" "this" {
  metadata {
    name   = var.namespace
    labels = { "pod-security.kubernetes.io/enforce" = "restricted" }
  }
}

resource "kubernetes_service_account_v1" "this" {
  metadata {
    name      = "bosun-control-plane"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  automount_service_account_token = false
}

# The key that seals Git credentials at rest. It is in the Terraform state (keep the state in
# an encrypted, access-controlled backend); it is not on the data volume.
resource "random_id" "secret_key" {
  byte_length = 32
}

resource "kubernetes_secret_v1" "secret_key" {
  metadata {
    name      = "bosun-secret-key"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  data = { key = random_id.secret_key.hex }
}

resource "kubernetes_secret_v1" "webhook" {
  count = var.webhook_secret == "" ? 0 : 1
  metadata {
    name      = "bosun-webhook"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  data = { secret = var.webhook_secret }
}

resource "kubernetes_storage_class_v1" "gp3" {
  metadata {
    name = "bosun-gp3-encrypted"
  }
  storage_provisioner    = "ebs.csi.aws.com"
  reclaim_policy         = "Retain"
  volume_binding_mode    = "WaitForFirstConsumer"
  allow_volume_expansion = true
  parameters = {
    type      = "gp3"
    encrypted = "true"
    kmsKeyId  = var.kms_key_arn
  }
}

resource "kubernetes_stateful_set_v1" "this" {
  metadata {
    name      = "bosun-control-plane"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    service_name          = "bosun-control-plane"
    replicas              = var.replicas
    pod_management_policy = local.replicated ? "Parallel" : "OrderedReady"
    selector {
      match_labels = local.labels
    }
    template {
      metadata {
        labels = local.labels
        annotations = {
          "prometheus.io/scrape" = "true"
          "prometheus.io/port"   = tostring(local.metrics_port)
          "prometheus.io/path"   = "/metrics"
        }
      }
      spec {
        service_account_name            = kubernetes_service_account_v1.this.metadata[0].name
        automount_service_account_token = false
        security_context {
          run_as_non_root = true
          run_as_user     = 65532
          run_as_group    = 65532
          fs_group        = 65532
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          # checkov:skip=CKV_K8S_11: no CPU limit on purpose (throttling delays renders and syncs); memory is limited
          # checkov:skip=CKV_K8S_14: var.image is validated to be pinned (not :latest); checkov cannot resolve variables
          # checkov:skip=CKV_K8S_43: a digest is accepted in var.image; tags are allowed for readability
          # checkov:skip=CKV_K8S_15: IfNotPresent with pinned images avoids a registry dependency at every restart
          name              = "control-plane"
          image             = var.image
          image_pull_policy = "IfNotPresent"
          args              = local.args
          env {
            name = "BOSUN_REPLICA_NAME"
            value_from {
              field_ref {
                field_path = "metadata.name"
              }
            }
          }
          dynamic "port" {
            for_each = merge(local.ports, { metrics = local.metrics_port })
            content {
              name           = port.key
              container_port = port.value
            }
          }
          # The gRPC health service, served over h2c on the metrics listener: Kubernetes' gRPC
          # probes cannot do TLS, and the gRPC listeners are TLS-only.
          readiness_probe {
            grpc {
              port = local.metrics_port
            }
            period_seconds = 5
          }
          liveness_probe {
            grpc {
              port = local.metrics_port
            }
            period_seconds    = 10
            failure_threshold = 6
          }
          # Opening a large store or PostgreSQL migrations may take a while at first start.
          startup_probe {
            http_get {
              path = "/healthz"
              port = "metrics"
            }
            period_seconds    = 2
            failure_threshold = 60
          }
          resources {
            requests = { cpu = var.resources.cpu, memory = var.resources.memory }
            limits   = { memory = var.resources.memory_limit }
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
          }
          volume_mount {
            name       = "data"
            mount_path = "/var/lib/bosun"
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          volume_mount {
            name       = "secret-key"
            mount_path = "/etc/bosun/secret-key"
            read_only  = true
          }
          dynamic "volume_mount" {
            for_each = local.replica_secrets
            content {
              name       = volume_mount.key
              mount_path = volume_mount.value
              read_only  = true
            }
          }
          dynamic "volume_mount" {
            for_each = var.webhook_secret == "" ? [] : [1]
            content {
              name       = "webhook"
              mount_path = "/etc/bosun/webhook"
              read_only  = true
            }
          }
        }
        volume {
          name = "tmp"
          empty_dir {}
        }
        dynamic "volume" {
          for_each = local.replicated ? [1] : []
          content {
            name = "data"
            empty_dir {
              size_limit = "4Gi"
            }
          }
        }
        dynamic "volume" {
          for_each = local.replica_secrets
          content {
            name = volume.key
            secret {
              secret_name = volume.key
            }
          }
        }
        dynamic "affinity" {
          for_each = local.replicated ? [1] : []
          content {
            pod_anti_affinity {
              preferred_during_scheduling_ignored_during_execution {
                weight = 100
                pod_affinity_term {
                  topology_key = "kubernetes.io/hostname"
                  label_selector {
                    match_labels = local.labels
                  }
                }
              }
            }
          }
        }
        volume {
          name = "secret-key"
          secret {
            secret_name = kubernetes_secret_v1.secret_key.metadata[0].name
          }
        }
        dynamic "volume" {
          for_each = var.webhook_secret == "" ? [] : [1]
          content {
            name = "webhook"
            secret {
              secret_name = kubernetes_secret_v1.webhook[0].metadata[0].name
            }
          }
        }
      }
    }
    dynamic "volume_claim_template" {
      for_each = local.replicated ? [] : [1]
      content {
        metadata {
          name = "data"
        }
        spec {
          access_modes       = ["ReadWriteOnce"]
          storage_class_name = kubernetes_storage_class_v1.gp3.metadata[0].name
          resources {
            requests = { storage = var.storage_size }
          }
        }
      }
    }
  }
  depends_on = [kubernetes_secret_v1.database, kubernetes_secret_v1.database_ca]
  lifecycle {
    precondition {
      condition     = !local.replicated || local.db_enabled
      error_message = "more than one replica needs `database` (they share one PostgreSQL)."
    }
  }
}

# Exposed on fixed node ports; the Network Load Balancer below (managed here, so no AWS Load
# Balancer Controller is needed) passes TCP through to them: TLS and mTLS end in the
# control plane, never at the load balancer.
resource "kubernetes_service_v1" "this" {
  metadata {
    name      = "bosun-control-plane"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    type     = "NodePort"
    selector = local.labels
    dynamic "port" {
      for_each = local.ports
      content {
        name        = port.key
        port        = port.value
        target_port = port.key
        node_port   = local.node_ports[port.key]
      }
    }
  }
}

resource "aws_security_group" "load_balancer" {
  name        = "bosun-control-plane-lb"
  description = "Bosun control plane NLB: the allowed sources in, the nodes' ports out"
  vpc_id      = var.load_balancer.vpc_id
  tags        = local.tags
}

resource "aws_vpc_security_group_ingress_rule" "load_balancer" {
  for_each          = { for pair in setproduct(keys(local.ports), var.allowed_cidrs) : "${pair[0]}-${pair[1]}" => { port = local.ports[pair[0]], cidr = pair[1] } }
  security_group_id = aws_security_group.load_balancer.id
  description       = "bosun ${split("-", each.key)[0]} from an allowed source"
  cidr_ipv4         = each.value.cidr
  from_port         = each.value.port
  to_port           = each.value.port
  ip_protocol       = "tcp"
}

resource "aws_vpc_security_group_egress_rule" "load_balancer" {
  security_group_id            = aws_security_group.load_balancer.id
  description                  = "to the control plane's node ports"
  referenced_security_group_id = var.load_balancer.node_security_group_id
  from_port                    = min(values(local.node_ports)...)
  to_port                      = max(values(local.node_ports)...)
  ip_protocol                  = "tcp"
}

resource "aws_vpc_security_group_ingress_rule" "nodes_from_load_balancer" {
  security_group_id            = var.load_balancer.node_security_group_id
  description                  = "bosun control plane node ports from its NLB"
  referenced_security_group_id = aws_security_group.load_balancer.id
  from_port                    = min(values(local.node_ports)...)
  to_port                      = max(values(local.node_ports)...)
  ip_protocol                  = "tcp"
}

resource "aws_lb" "this" {
  # checkov:skip=CKV_AWS_91: TCP passthrough (TLS ends in the control plane): NLB access logs cover only TLS listeners
  name                             = "bosun-control-plane"
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = var.load_balancer.public_subnet_ids
  security_groups                  = [aws_security_group.load_balancer.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = true
  tags                             = local.tags
}

resource "aws_lb_target_group" "this" {
  for_each    = local.node_ports
  name        = "bosun-${each.key}"
  port        = each.value
  protocol    = "TCP"
  target_type = "instance"
  vpc_id      = var.load_balancer.vpc_id
  health_check {
    protocol = "TCP"
  }
  tags = local.tags
}

resource "aws_lb_listener" "this" {
  for_each          = local.ports
  load_balancer_arn = aws_lb.this.arn
  port              = each.value
  protocol          = "TCP"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this[each.key].arn
  }
  tags = local.tags
}

resource "aws_autoscaling_attachment" "this" {
  # checkov:skip=CKV2_AWS_15: the Auto Scaling group is the EKS managed node group's (EKS owns its health checks); the target groups' TCP checks take a bad node out of the load balancer
  for_each               = { for pair in setproduct(keys(local.node_ports), var.load_balancer.node_autoscaling_groups) : "${pair[0]}-${pair[1]}" => { port = pair[0], asg = pair[1] } }
  autoscaling_group_name = each.value.asg
  lb_target_group_arn    = aws_lb_target_group.this[each.value.port].arn
}

resource "kubernetes_pod_disruption_budget_v1" "this" {
  metadata {
    name      = "bosun-control-plane"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
  spec {
    # One replica may go for a drain (agents hold their state); of several, two stay.
    max_unavailable = local.replicated ? null : "1"
    min_available   = local.replicated ? "2" : null
    selector {
      match_labels = local.labels
    }
  }
}

resource "kubernetes_network_policy_v1" "this" {
  metadata {
    name      = "bosun-control-plane"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
  spec {
    pod_selector {
      match_labels = local.labels
    }
    policy_types = ["Ingress", "Egress"]
    ingress {
      dynamic "ports" {
        for_each = local.ports
        content {
          port     = ports.value
          protocol = "TCP"
        }
      }
    }
    # Metrics from inside the cluster only (Prometheus); kubelet probes are not filtered.
    ingress {
      from {
        namespace_selector {}
      }
      ports {
        port     = local.metrics_port
        protocol = "TCP"
      }
    }
    egress {
      ports {
        port     = 53
        protocol = "UDP"
      }
      ports {
        port     = 53
        protocol = "TCP"
      }
    }
    dynamic "egress" {
      for_each = local.db_enabled ? [1] : []
      content {
        ports {
          port     = 5432
          protocol = "TCP"
        }
      }
    }
    egress {
      dynamic "ports" {
        for_each = [443, 80, 9418, 22]
        content {
          port     = ports.value
          protocol = "TCP"
        }
      }
    }
  }
}

resource "aws_route53_record" "this" {
  count   = var.route53_zone_id == "" ? 0 : 1
  zone_id = var.route53_zone_id
  name    = var.hostname
  type    = "A"
  alias {
    name                   = aws_lb.this.dns_name
    zone_id                = aws_lb.this.zone_id
    evaluate_target_health = true
  }
}
