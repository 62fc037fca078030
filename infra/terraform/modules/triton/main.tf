locals {
  selector_labels = {
    "app.kubernetes.io/name"     = "triton"
    "app.kubernetes.io/instance" = var.name
  }
  labels = merge(var.labels, local.selector_labels, {
    "app.kubernetes.io/part-of"    = "fraud-platform"
    "app.kubernetes.io/component"  = "model-server"
    "app.kubernetes.io/managed-by" = "terraform"
  })

  ports = {
    http    = 8000
    grpc    = 8001
    metrics = 8002
  }
  model_repository_path = "/models"

  claim_name = var.model_repository_claim_name != null ? var.model_repository_claim_name : kubernetes_persistent_volume_claim_v1.this[0].metadata[0].name

  limits = merge(var.resources.limits, var.gpu_count > 0 ? { "nvidia.com/gpu" = tostring(var.gpu_count) } : {})

  # Model management (and shared memory, trace, logging) answers only requests carrying the admin key:
  # header triton-admin-key over HTTP, triton-grpc-protocol-triton-admin-key over gRPC (fraudshared.triton_server).
  admin_key_secret_name = var.admin_key_secret_name != null ? var.admin_key_secret_name : kubernetes_secret_v1.this[0].metadata[0].name
  admin_key_secret_key  = "admin-key"
  restricted_apis       = "model-repository,model-config,shared-memory,trace,logging:triton-admin-key=$(TRITON_ADMIN_KEY)"
}

# The admin key, made once: uuid() is random (crypto/rand) and the data is never re-planned. Like every
# Secret managed here, its value is in the Terraform state; pass admin_key_secret_name to keep it out.
resource "kubernetes_secret_v1" "this" {
  count = var.admin_key_secret_name == null ? 1 : 0

  metadata {
    name      = "${var.name}-admin-key"
    namespace = var.namespace
    labels    = local.labels
  }

  data = {
    (local.admin_key_secret_key) = replace("${uuid()}${uuid()}", "-", "")
  }

  lifecycle {
    ignore_changes = [data]
  }
}

resource "kubernetes_persistent_volume_claim_v1" "this" {
  count = var.model_repository_claim_name == null ? 1 : 0

  metadata {
    name      = "${var.name}-model-repository"
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    access_modes       = var.model_repository_access_modes
    storage_class_name = var.model_repository_storage_class
    resources {
      requests = {
        storage = var.model_repository_size
      }
    }
  }

  # WaitForFirstConsumer storage classes bind only when a pod uses the claim.
  wait_until_bound = false
}

resource "kubernetes_service_account_v1" "this" {
  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }

  automount_service_account_token = false
}

resource "kubernetes_deployment_v1" "this" {
  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    replicas               = var.replicas
    revision_history_limit = 5

    selector {
      match_labels = local.selector_labels
    }

    strategy {
      type = "RollingUpdate"
      rolling_update {
        # A GPU pod cannot surge onto a GPU that is already taken.
        max_surge       = var.gpu_count > 0 ? "0" : "1"
        max_unavailable = var.gpu_count > 0 ? "1" : "0"
      }
    }

    template {
      metadata {
        labels = local.labels
        annotations = {
          "prometheus.io/scrape" = "true"
          "prometheus.io/port"   = tostring(local.ports.metrics)
          "prometheus.io/path"   = "/metrics"
        }
      }

      spec {
        service_account_name            = kubernetes_service_account_v1.this.metadata[0].name
        automount_service_account_token = false
        enable_service_links            = false
        node_selector                   = var.node_selector

        security_context {
          run_as_non_root = true
          run_as_user     = var.run_as_user
          run_as_group    = var.run_as_user
          fs_group        = var.fs_group
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        dynamic "toleration" {
          for_each = var.tolerations
          content {
            key      = toleration.value.key
            operator = toleration.value.operator
            value    = toleration.value.value
            effect   = toleration.value.effect
          }
        }

        container {
          name              = "tritonserver"
          image             = var.image
          image_pull_policy = var.image_pull_policy
          command           = ["tritonserver"]
          # Explicit model control: governance loads a model only after writing its repository entry
          # (so a half-written directory is never picked up), and unloads it on rollback. Only governance
          # holds the admin key the load/unload APIs demand; Kubernetes expands $(TRITON_ADMIN_KEY) from env.
          args = concat([
            "--model-repository=${local.model_repository_path}",
            "--model-control-mode=explicit",
            "--grpc-restricted-protocol=${local.restricted_apis}",
            "--http-restricted-api=${local.restricted_apis}",
          ], var.extra_args)

          env {
            name = "TRITON_ADMIN_KEY"
            value_from {
              secret_key_ref {
                name = local.admin_key_secret_name
                key  = local.admin_key_secret_key
              }
            }
          }

          port {
            name           = "http"
            container_port = local.ports.http
            protocol       = "TCP"
          }
          port {
            name           = "grpc"
            container_port = local.ports.grpc
            protocol       = "TCP"
          }
          port {
            name           = "metrics"
            container_port = local.ports.metrics
            protocol       = "TCP"
          }

          resources {
            requests = var.resources.requests
            limits   = local.limits
          }

          startup_probe {
            http_get {
              path = "/v2/health/live"
              port = "http"
            }
            period_seconds    = 5
            failure_threshold = 60
          }
          readiness_probe {
            http_get {
              path = "/v2/health/ready"
              port = "http"
            }
            period_seconds    = 5
            timeout_seconds   = 2
            failure_threshold = 3
          }
          liveness_probe {
            http_get {
              path = "/v2/health/live"
              port = "http"
            }
            period_seconds    = 10
            timeout_seconds   = 2
            failure_threshold = 3
          }

          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = var.read_only_root_filesystem
            run_as_non_root            = true
            capabilities {
              drop = ["ALL"]
            }
          }

          # Read-only: only governance writes the repository.
          volume_mount {
            name       = "models"
            mount_path = local.model_repository_path
            read_only  = true
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          volume_mount {
            name       = "shm"
            mount_path = "/dev/shm"
          }
        }

        volume {
          name = "models"
          persistent_volume_claim {
            claim_name = local.claim_name
            read_only  = true
          }
        }
        volume {
          name = "tmp"
          empty_dir {
            size_limit = "1Gi"
          }
        }
        volume {
          name = "shm"
          empty_dir {
            medium     = "Memory"
            size_limit = var.shm_size
          }
        }
      }
    }
  }
}

resource "kubernetes_service_v1" "this" {
  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    type     = "ClusterIP"
    selector = local.selector_labels

    port {
      name        = "http"
      port        = local.ports.http
      target_port = "http"
      protocol    = "TCP"
    }
    port {
      name         = "grpc"
      port         = local.ports.grpc
      target_port  = "grpc"
      protocol     = "TCP"
      app_protocol = "grpc"
    }
    port {
      name        = "metrics"
      port        = local.ports.metrics
      target_port = "metrics"
      protocol    = "TCP"
    }
  }
}

# Only scoring (inference) and governance (model management, with the admin key) reach Triton's gRPC port;
# the HTTP port serves the kubelet's probes only (node traffic, which NetworkPolicies do not filter on
# common CNIs); metrics are open to the scraper namespaces.
resource "kubernetes_network_policy_v1" "this" {
  count = var.network_policy ? 1 : 0

  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    pod_selector {
      match_labels = local.selector_labels
    }
    policy_types = ["Ingress"]

    ingress {
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/part-of" = "fraud-platform" }
          match_expressions {
            key      = "app.kubernetes.io/name"
            operator = "In"
            values   = var.allowed_clients
          }
        }
      }
      ports {
        port     = tostring(local.ports.grpc)
        protocol = "TCP"
      }
    }

    ingress {
      from {
        namespace_selector {
          match_labels = var.metrics_namespace_labels
        }
      }
      ports {
        port     = tostring(local.ports.metrics)
        protocol = "TCP"
      }
    }
  }
}
