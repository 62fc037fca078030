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
    # Whose secrets it may read (fraudshared.secrets), whose certificates it trusts, where it listens: the
    # kubelet's probes and the peers reach the pod IP, not loopback.
    FRAUD_SERVICE_NAME = var.name
    FRAUD_TRUST_DOMAIN = var.trust_domain
    FRAUD_BIND_HOST    = "0.0.0.0"
  }
  # The service's own credential (fraudshared.identity.tls.service_credential_files), from the keys of a
  # kubernetes.io/tls Secret with ca.crt (what cert-manager writes), mounted read-only at tls_mount_path.
  tls_env = {
    FRAUD_TLS_CA_FILE                          = "${var.tls_mount_path}/ca.crt"
    "FRAUD_${local.service_env}_TLS_CERT_FILE" = "${var.tls_mount_path}/tls.crt"
    "FRAUD_${local.service_env}_TLS_KEY_FILE"  = "${var.tls_mount_path}/tls.key"
  }
  # Set only when configured: an empty OTEL endpoint or VAULT_ADDR must stay unset, not "".
  optional_env = {
    OTEL_EXPORTER_OTLP_ENDPOINT = var.otlp_endpoint
    VAULT_ADDR                  = var.vault_addr
  }
  env = merge(local.base_env, local.tls_env, { for k, v in local.optional_env : k => v if v != "" }, var.env)

  vault_secret_env = {
    VAULT_ROLE_ID   = { secret_name = var.vault_approle_secret_name, key = "role_id" }
    VAULT_SECRET_ID = { secret_name = var.vault_approle_secret_name, key = "secret_id" }
  }
  secret_env = merge(
    { for k, v in local.vault_secret_env : k => v if var.vault_approle_secret_name != null },
    var.secret_env,
  )

  command = var.command != null ? var.command : ["python", "-m", "services.${var.name}"]

  # The gRPC port requires a client certificate from the platform's CA, which the kubelet's native gRPC probe
  # cannot present: the probes run grpc.health.v1 Check inside the container with the service's own
  # credential (health needs no role). Arguments: address, health service ("liveness" or "" = ready).
  probe_script = join("; ", [
    "import asyncio, sys",
    "from fraudshared.readiness import own_credential, wait_until_serving",
    "asyncio.run(wait_until_serving(sys.argv[1], 3.0, sys.argv[2], credential=own_credential(sys.argv[3])))",
  ])
  probe_address           = "127.0.0.1:${var.grpc_port}"
  liveness_probe_command  = ["python", "-c", local.probe_script, local.probe_address, "liveness", var.name]
  readiness_probe_command = ["python", "-c", local.probe_script, local.probe_address, "", var.name]

  reserved_volumes = ["tmp", "var", "tls"]

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
          # Exec probes over mTLS (see local.probe_script); each run starts a Python process (~0.6 s CPU), so
          # the periods are longer than a native probe's would be.
          startup_probe {
            exec {
              command = local.liveness_probe_command
            }
            period_seconds    = 5
            timeout_seconds   = 5
            failure_threshold = 60
          }
          readiness_probe {
            exec {
              command = local.readiness_probe_command
            }
            period_seconds    = 10
            timeout_seconds   = 5
            failure_threshold = 3
          }
          liveness_probe {
            exec {
              command = local.liveness_probe_command
            }
            period_seconds    = 20
            timeout_seconds   = 5
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
          volume_mount {
            name       = "tls"
            mount_path = var.tls_mount_path
            read_only  = true
          }
          dynamic "volume_mount" {
            for_each = var.volumes
            content {
              name       = volume_mount.key
              mount_path = volume_mount.value.mount_path
              read_only  = volume_mount.value.read_only
            }
          }
          dynamic "volume_mount" {
            for_each = var.secret_volumes
            content {
              name       = volume_mount.key
              mount_path = volume_mount.value.mount_path
              read_only  = true
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
        # Files 0400, group fs_group: the kubelet adds group read for fsGroup, so the non-root user reads them.
        volume {
          name = "tls"
          secret {
            secret_name  = var.tls_secret_name
            default_mode = "0400"
            optional     = false
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
        dynamic "volume" {
          for_each = var.secret_volumes
          content {
            name = volume.key
            secret {
              secret_name  = volume.value.secret_name
              default_mode = "0400"
              optional     = false
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
      condition     = length(setintersection(concat(keys(var.volumes), keys(var.secret_volumes)), local.reserved_volumes)) == 0
      error_message = "Volume names tmp, var and tls are reserved by the module."
    }
    precondition {
      condition     = length(setintersection(keys(var.volumes), keys(var.secret_volumes))) == 0
      error_message = "A volume name is used both in volumes and in secret_volumes."
    }
    precondition {
      condition = length(distinct(concat(
        [var.var_dir, var.tls_mount_path, "/tmp"],
        [for v in values(var.volumes) : v.mount_path],
        [for v in values(var.secret_volumes) : v.mount_path],
      ))) == 3 + length(var.volumes) + length(var.secret_volumes)
      error_message = "Every volume needs its own mount path (var_dir, tls_mount_path and /tmp included)."
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
