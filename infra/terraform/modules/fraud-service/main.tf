locals {
  # Same rule as fraudshared.config.service_env_name: upper-case, non-alphanumerics as "_".
  service_env = trim(replace(upper(var.name), "/[^A-Z0-9]+/", "_"), "_")

  selector_labels = {
    "app.kubernetes.io/name"     = var.name
    "app.kubernetes.io/instance" = "fraud-${var.name}"
  }
  labels = merge(var.labels, local.selector_labels, {
    "app.kubernetes.io/part-of"    = "fraud-platform"
    "app.kubernetes.io/component"  = var.name
    "app.kubernetes.io/managed-by" = "terraform"
  })

  # Names exactly as the services read them (docs/config.md); the ports must match the container ports.
  base_env = {
    "FRAUD_${local.service_env}_GRPC_PORT"    = tostring(var.grpc_port)
    "FRAUD_${local.service_env}_METRICS_PORT" = tostring(var.metrics_port)
    FRAUD_NATS_URL                            = var.nats_url
    FRAUD_VAR_DIR                             = var.var_dir
    FRAUD_LOG_LEVEL                           = var.log_level
  }
  # Set only when configured: an empty OTEL endpoint or VAULT_ADDR must stay unset, not "".
  optional_env = {
    OTEL_EXPORTER_OTLP_ENDPOINT = var.otlp_endpoint
    VAULT_ADDR                  = var.vault_addr
  }
  env = merge(local.base_env, { for k, v in local.optional_env : k => v if v != "" }, var.env)

  vault_secret_env = {
    VAULT_ROLE_ID   = { secret_name = var.vault_approle_secret_name, key = "role_id" }
    VAULT_SECRET_ID = { secret_name = var.vault_approle_secret_name, key = "secret_id" }
  }
  secret_env = merge(
    { for k, v in local.vault_secret_env : k => v if var.vault_approle_secret_name != null },
    var.secret_env,
  )

  command = var.command != null ? var.command : ["python", "-m", "services.${var.name}"]

  pod_annotations = merge(var.pod_annotations, {
    "prometheus.io/scrape" = "true"
    "prometheus.io/port"   = tostring(var.metrics_port)
    "prometheus.io/path"   = "/metrics"
  })
}

resource "kubernetes_service_account_v1" "this" {
  metadata {
    name        = "fraud-${var.name}"
    namespace   = var.namespace
    labels      = local.labels
    annotations = var.service_account_annotations
  }

  # The services never call the Kubernetes API.
  automount_service_account_token = false
}

resource "kubernetes_deployment_v1" "this" {
  metadata {
    name      = "fraud-${var.name}"
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    # Left unmanaged (null) when the HPA owns the replica count, so an apply does not undo its scaling.
    replicas               = var.autoscaling == null ? var.replicas : null
    revision_history_limit = 5

    selector {
      match_labels = local.selector_labels
    }

    strategy {
      type = var.deployment_strategy
      dynamic "rolling_update" {
        for_each = var.deployment_strategy == "RollingUpdate" ? [1] : []
        content {
          max_surge       = "25%"
          max_unavailable = "0"
        }
      }
    }

    template {
      metadata {
        labels      = local.labels
        annotations = local.pod_annotations
      }

      spec {
        service_account_name             = kubernetes_service_account_v1.this.metadata[0].name
        automount_service_account_token  = false
        enable_service_links             = false
        termination_grace_period_seconds = var.termination_grace_period_seconds
        node_selector                    = var.node_selector

        security_context {
          run_as_non_root = true
          run_as_user     = var.run_as_user
          run_as_group    = var.run_as_user
          fs_group        = var.fs_group
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        topology_spread_constraint {
          max_skew           = 1
          topology_key       = "kubernetes.io/hostname"
          when_unsatisfiable = "ScheduleAnyway"
          label_selector {
            match_labels = local.selector_labels
          }
        }

        container {
          name              = var.name
          image             = var.image
          image_pull_policy = var.image_pull_policy
          command           = local.command

          port {
            name           = "grpc"
            container_port = var.grpc_port
            protocol       = "TCP"
          }
          port {
            name           = "metrics"
            container_port = var.metrics_port
            protocol       = "TCP"
          }

          dynamic "env" {
            for_each = local.env
            content {
              name  = env.key
              value = env.value
            }
          }

          dynamic "env" {
            for_each = local.secret_env
            content {
              name = env.key
              value_from {
                secret_key_ref {
                  name = env.value.secret_name
                  key  = env.value.key
                }
              }
            }
          }

          resources {
            requests = var.resources.requests
            limits   = var.resources.limits
          }

          # Every service serves grpc.health.v1: "liveness" is SERVING while the server runs (startup and
          # liveness: restart only a dead process); the overall service "" only while the service can do its
          # job (readiness: NATS connected, scoring's models answering; see docs/runtime.md, Readiness).
          startup_probe {
            grpc {
              port    = var.grpc_port
              service = "liveness"
            }
            period_seconds    = 2
            failure_threshold = 60
          }
          readiness_probe {
            grpc {
              port = var.grpc_port
            }
            period_seconds    = 5
            timeout_seconds   = 2
            failure_threshold = 3
          }
          liveness_probe {
            grpc {
              port    = var.grpc_port
              service = "liveness"
            }
            period_seconds    = 10
            timeout_seconds   = 2
            failure_threshold = 3
          }

          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            capabilities {
              drop = ["ALL"]
            }
          }

          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          volume_mount {
            name       = "var"
            mount_path = var.var_dir
          }
          dynamic "volume_mount" {
            for_each = var.volumes
            content {
              name       = volume_mount.key
              mount_path = volume_mount.value.mount_path
              read_only  = volume_mount.value.read_only
            }
          }
        }

        volume {
          name = "tmp"
          empty_dir {
            size_limit = "64Mi"
          }
        }
        volume {
          name = "var"
          empty_dir {
            size_limit = "256Mi"
          }
        }
        dynamic "volume" {
          for_each = var.volumes
          content {
            name = volume.key
            persistent_volume_claim {
              claim_name = volume.value.claim_name
              read_only  = volume.value.read_only
            }
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.grpc_port != var.metrics_port
      error_message = "grpc_port and metrics_port must differ."
    }
    precondition {
      condition     = length(setintersection(keys(local.env), keys(local.secret_env))) == 0
      error_message = "A variable is set both as plain env and from a secret."
    }
    precondition {
      condition     = length(setintersection(keys(var.volumes), ["tmp", "var"])) == 0
      error_message = "Volume names tmp and var are reserved by the module."
    }
  }
}

resource "kubernetes_service_v1" "this" {
  metadata {
    name      = "fraud-${var.name}"
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    type     = "ClusterIP"
    selector = local.selector_labels

    port {
      name         = "grpc"
      port         = var.grpc_port
      target_port  = "grpc"
      protocol     = "TCP"
      app_protocol = "grpc"
    }
    port {
      name        = "metrics"
      port        = var.metrics_port
      target_port = "metrics"
      protocol    = "TCP"
    }
  }
}

resource "kubernetes_pod_disruption_budget_v1" "this" {
  metadata {
    name      = "fraud-${var.name}"
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    max_unavailable = tostring(var.pdb_max_unavailable)
    selector {
      match_labels = local.selector_labels
    }
  }
}

resource "kubernetes_horizontal_pod_autoscaler_v2" "this" {
  count = var.autoscaling == null ? 0 : 1

  metadata {
    name      = "fraud-${var.name}"
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    min_replicas = var.autoscaling.min_replicas
    max_replicas = var.autoscaling.max_replicas

    scale_target_ref {
      api_version = "apps/v1"
      kind        = "Deployment"
      name        = kubernetes_deployment_v1.this.metadata[0].name
    }

    metric {
      type = "Resource"
      resource {
        name = "cpu"
        target {
          type                = "Utilization"
          average_utilization = var.autoscaling.target_cpu_utilization_percentage
        }
      }
    }
  }
}
