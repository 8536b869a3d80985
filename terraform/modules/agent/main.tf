# A Bosun agent in one cluster: it dials out to the control plane, so nothing here opens a
# port. Cluster-wide it is cluster-admin in effect, as Argo CD's application controller (see
# k8s/base/agent/clusterrole.yaml for why anything narrower fails Kubernetes' escalation check);
# with `namespaces` it is a namespaced install, as k8s/components/namespaced: a Role in each of
# those namespaces, nothing cluster-wide, and the agent told to watch and manage only there.

locals {
  labels = {
    "app.kubernetes.io/name"    = "bosun-agent"
    "app.kubernetes.io/part-of" = "bosun"
  }
  all_verbs  = ["*"]
  namespaced = length(var.namespaces) > 0
}

resource "kubernetes_namespace_v1" "this" {
  metadata {
    name   = var.namespace
    labels = { "pod-security.kubernetes.io/enforce" = "restricted" }
  }
}

resource "kubernetes_service_account_v1" "this" {
  metadata {
    name      = "bosun-agent"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
}

resource "kubernetes_cluster_role_v1" "this" {
  count = local.namespaced ? 0 : 1
  metadata {
    name   = "bosun-agent"
    labels = local.labels
  }
  # checkov:skip=CKV_K8S_49: a GitOps agent applies whatever kinds the repositories hold (as Argo CD's controller does); narrow it with var.namespaces
  # checkov:skip=CKV_K8S_155: same reason — it must be able to apply RBAC objects that Git declares
  # checkov:skip=CKV_K8S_156: same reason
  # checkov:skip=CKV_K8S_157: same reason
  # checkov:skip=CKV_K8S_158: same reason
  rule {
    api_groups = ["*"]
    resources  = ["*"]
    verbs      = local.all_verbs
  }
  rule {
    non_resource_urls = ["*"]
    verbs             = local.all_verbs
  }
}

resource "kubernetes_cluster_role_binding_v1" "this" {
  count = local.namespaced ? 0 : 1
  metadata {
    name   = "bosun-agent"
    labels = local.labels
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "ClusterRole"
    name      = kubernetes_cluster_role_v1.this[0].metadata[0].name
  }
  subject {
    kind      = "ServiceAccount"
    name      = kubernetes_service_account_v1.this.metadata[0].name
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
}

resource "kubernetes_role_v1" "write" {
  for_each = toset(var.namespaces)
  metadata {
    name      = "bosun-agent-write"
    namespace = each.value
    labels    = local.labels
  }
  # checkov:skip=CKV_K8S_49: every verb in this namespace only, so that Roles and RoleBindings Git declares here pass the escalation check
  rule {
    api_groups = ["*"]
    resources  = ["*"]
    verbs      = local.all_verbs
  }
}

resource "kubernetes_role_binding_v1" "write" {
  for_each = toset(var.namespaces)
  metadata {
    name      = "bosun-agent-write"
    namespace = each.value
    labels    = local.labels
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "Role"
    name      = kubernetes_role_v1.write[each.key].metadata[0].name
  }
  subject {
    kind      = "ServiceAccount"
    name      = kubernetes_service_account_v1.this.metadata[0].name
    namespace = kubernetes_namespace_v1.this.metadata[0].name
  }
}

resource "kubernetes_secret_v1" "join" {
  metadata {
    name      = "bosun-agent-join"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  # A registration token serves every spoke and only until it expires; the agent uses it
  # to join (and to join again after its certificate lapsed), never afterwards. Applying a
  # new token or a new CA bundle updates this Secret in place, and the agent reads it anew.
  data = {
    token          = var.join_token
    "ca.pem"       = var.ca_pem
    "cluster-name" = var.cluster_name
  }
}

# A fresh EKS cluster has only the in-tree gp2 class (and no default gp3): without a class that
# exists, the state volume would stay Pending.
resource "kubernetes_storage_class_v1" "state" {
  count = var.storage_class == "" ? 1 : 0
  metadata {
    name   = "bosun-agent-gp3"
    labels = local.labels
  }
  storage_provisioner    = "ebs.csi.aws.com"
  reclaim_policy         = "Retain"
  volume_binding_mode    = "WaitForFirstConsumer"
  allow_volume_expansion = true
  parameters             = merge({ type = "gp3", encrypted = "true" }, var.kms_key_arn == "" ? {} : { kmsKeyId = var.kms_key_arn })
}

resource "kubernetes_persistent_volume_claim_v1" "state" {
  metadata {
    name      = "bosun-agent-state"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    access_modes       = ["ReadWriteOnce"]
    storage_class_name = var.storage_class != "" ? var.storage_class : kubernetes_storage_class_v1.state[0].metadata[0].name
    resources {
      requests = { storage = "1Gi" }
    }
  }
  wait_until_bound = false
}

resource "kubernetes_deployment_v1" "this" {
  metadata {
    name      = "bosun-agent"
    namespace = kubernetes_namespace_v1.this.metadata[0].name
    labels    = local.labels
  }
  spec {
    replicas = 1
    strategy {
      type = "Recreate"
    }
    selector {
      match_labels = local.labels
    }
    template {
      metadata {
        labels = local.labels
      }
      spec {
        service_account_name = kubernetes_service_account_v1.this.metadata[0].name
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
          name              = "agent"
          image             = var.image
          image_pull_policy = "IfNotPresent"
          # checkov:skip=CKV_K8S_11: no CPU limit on purpose (throttling delays self-heal); memory is limited
          # checkov:skip=CKV_K8S_14: var.image is validated to be pinned (not :latest); checkov cannot resolve variables
          # checkov:skip=CKV_K8S_43: a digest is accepted in var.image; tags are allowed for readability
          # checkov:skip=CKV_K8S_15: IfNotPresent with pinned images avoids a registry dependency at every restart
          args = concat([
            "--control-plane=https://${var.control_plane_host}:7444",
            "--join-url=https://${var.control_plane_host}:7445",
            "--ca-file=/etc/bosun/join/ca.pem",
            "--join-token-file=/etc/bosun/join/token",
            "--cluster-name-file=/etc/bosun/join/cluster-name",
            "--state-dir=/var/lib/bosun-agent",
            "--log-format=json",
            "--http-addr=0.0.0.0:8080",
          ], [for n in var.namespaces : "--namespace=${n}"])
          port {
            name           = "http"
            container_port = 8080
            protocol       = "TCP"
          }
          # /healthz: the process answers; /readyz: joined, connected (or holding a desired
          # state) and its watches listed — as in k8s/base/agent.
          liveness_probe {
            http_get {
              path = "/healthz"
              port = "http"
            }
            period_seconds    = 20
            failure_threshold = 3
          }
          readiness_probe {
            http_get {
              path = "/readyz"
              port = "http"
            }
            period_seconds    = 5
            failure_threshold = 2
          }
          resources {
            requests = { cpu = "50m", memory = "32Mi" }
            limits   = { memory = "256Mi" }
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
          }
          volume_mount {
            name       = "state"
            mount_path = "/var/lib/bosun-agent"
          }
          volume_mount {
            name       = "join"
            mount_path = "/etc/bosun/join"
            read_only  = true
          }
        }
        volume {
          name = "state"
          persistent_volume_claim {
            claim_name = kubernetes_persistent_volume_claim_v1.state.metadata[0].name
          }
        }
        volume {
          name = "join"
          secret {
            secret_name = kubernetes_secret_v1.join.metadata[0].name
          }
        }
      }
    }
  }
}
