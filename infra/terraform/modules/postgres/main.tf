locals {
  in_cluster = var.mode == "in_cluster"

  selector_labels = {
    "app.kubernetes.io/name"     = "postgres"
    "app.kubernetes.io/instance" = var.name
  }
  labels = merge(var.labels, local.selector_labels, {
    "app.kubernetes.io/part-of"    = "fraud-platform"
    "app.kubernetes.io/component"  = "database"
    "app.kubernetes.io/managed-by" = "terraform"
  })

  host     = local.in_cluster ? "${var.name}.${var.namespace}.svc.${var.cluster_domain}" : var.host
  password = local.in_cluster ? random_password.this[0].result : var.password
  ssl_mode = var.ssl_mode != null ? var.ssl_mode : (local.in_cluster ? "disable" : "verify-full")

  # The form FRAUD_GOVERNANCE_DATABASE_URL takes (SQLAlchemy with psycopg 3).
  database_url = format(
    "postgresql+psycopg://%s:%s@%s:%d/%s?sslmode=%s",
    urlencode(var.username), urlencode(coalesce(local.password, "unset")), coalesce(local.host, "unset"),
    var.port, var.database, local.ssl_mode,
  )

  secret_name      = "${var.name}-credentials"
  database_url_key = "database_url" # the key written in kubernetes_secret_v1.this
  data_path        = "/var/lib/postgresql/data"
}

resource "random_password" "this" {
  count = local.in_cluster ? 1 : 0

  length  = 32
  special = false # URL-safe without escaping
}

resource "kubernetes_secret_v1" "this" {
  metadata {
    name      = local.secret_name
    namespace = var.namespace
    labels    = local.labels
  }

  type = "Opaque"
  data = {
    database_url = local.database_url
    username     = var.username
    password     = local.password
  }

  lifecycle {
    precondition {
      condition     = local.in_cluster || (var.host != null && var.password != null)
      error_message = "mode = external needs host and password."
    }
  }
}

resource "kubernetes_service_v1" "this" {
  count = local.in_cluster ? 1 : 0

  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    # Headless: the StatefulSet's governing Service; its DNS name resolves to the single pod.
    cluster_ip = "None"
    selector   = local.selector_labels

    port {
      name        = "postgres"
      port        = var.port
      target_port = "postgres"
      protocol    = "TCP"
    }
  }
}

resource "kubernetes_stateful_set_v1" "this" {
  count = local.in_cluster ? 1 : 0

  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    replicas     = 1
    service_name = kubernetes_service_v1.this[0].metadata[0].name

    selector {
      match_labels = local.selector_labels
    }

    template {
      metadata {
        labels = local.labels
      }

      spec {
        automount_service_account_token  = false
        enable_service_links             = false
        termination_grace_period_seconds = 60

        security_context {
          run_as_non_root = true
          run_as_user     = 999
          run_as_group    = 999
          fs_group        = 999
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          name  = "postgres"
          image = var.image

          # The container always listens on 5432 (the image's init scripts assume it); the Service maps var.port.
          port {
            name           = "postgres"
            container_port = 5432
            protocol       = "TCP"
          }

          env {
            name  = "POSTGRES_USER"
            value = var.username
          }
          env {
            name  = "POSTGRES_DB"
            value = var.database
          }
          env {
            name = "POSTGRES_PASSWORD"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.this.metadata[0].name
                key  = "password"
              }
            }
          }
          env {
            # A subdirectory, because the volume root may hold lost+found.
            name  = "PGDATA"
            value = "${local.data_path}/pgdata"
          }

          resources {
            requests = var.resources.requests
            limits   = var.resources.limits
          }

          readiness_probe {
            exec {
              command = ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", var.username, "-d", var.database]
            }
            period_seconds    = 5
            failure_threshold = 6
          }
          liveness_probe {
            exec {
              command = ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", var.username, "-d", var.database]
            }
            initial_delay_seconds = 30
            period_seconds        = 10
            failure_threshold     = 6
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
            name       = "data"
            mount_path = local.data_path
          }
          volume_mount {
            name       = "run"
            mount_path = "/var/run/postgresql"
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
        }

        volume {
          name = "run"
          empty_dir {
            size_limit = "16Mi"
          }
        }
        volume {
          name = "tmp"
          empty_dir {
            size_limit = "256Mi"
          }
        }
      }
    }

    volume_claim_template {
      metadata {
        name   = "data"
        labels = local.labels
      }
      spec {
        access_modes       = ["ReadWriteOnce"]
        storage_class_name = var.storage_class_name
        resources {
          requests = {
            storage = var.storage_size
          }
        }
      }
    }

    persistent_volume_claim_retention_policy {
      when_deleted = "Retain"
      when_scaled  = "Retain"
    }
  }
}
