locals {
  clustered = var.replicas > 1

  # authorization.users: one user per principal, named by its certificate's SPIFFE id (verify_and_map maps
  # the client certificate's URI SAN to it), as fraudshared.nats_access.users renders it for the local
  # runtime. Empty deny lists and an absent allow_responses are left out.
  users = [
    for principal, p in var.permissions : {
      user = "spiffe://${var.trust_domain}/${replace(principal, ":", "/")}"
      permissions = merge(
        {
          publish   = { for k, v in { allow = p.publish.allow, deny = p.publish.deny } : k => v if length(v) > 0 }
          subscribe = { for k, v in { allow = p.subscribe.allow, deny = p.subscribe.deny } : k => v if length(v) > 0 }
        },
        { for k, v in { allow_responses = p.allow_responses } : k => v if v != null },
      )
    }
  ]

  container_security_context = {
    allowPrivilegeEscalation = false
    readOnlyRootFilesystem   = true
    runAsNonRoot             = true
    capabilities             = { drop = ["ALL"] }
  }

  values = {
    fullnameOverride = var.name

    config = {
      # Client port: TLS with a client certificate from the platform's CA, required and mapped to a user.
      nats = {
        tls = {
          enabled    = true
          secretName = var.tls_secret_name
          cert       = "tls.crt"
          key        = "tls.key"
          ca         = "ca.crt"
          merge = {
            verify_and_map = true
            timeout        = 5
          }
        }
      }
      # No user/password or token user exists: a client without a mapped certificate cannot connect.
      merge = {
        authorization = { users = local.users }
      }
      cluster = {
        enabled  = local.clustered
        replicas = var.replicas
      }
      jetstream = {
        enabled = true
        fileStore = {
          enabled = true
          dir     = "/data"
          pvc = {
            enabled          = true
            size             = var.file_storage_size
            storageClassName = var.storage_class_name
          }
        }
        # Every stream of the event log uses file storage (docs/events.md).
        memoryStore = { enabled = false }
      }
      monitor = { enabled = true }
    }

    container = {
      resources = var.resources
      merge     = { securityContext = local.container_security_context }
    }
    reloader = {
      merge = { securityContext = local.container_security_context }
    }
    promExporter = {
      enabled = var.enable_prometheus_exporter
      merge   = { securityContext = local.container_security_context }
    }

    podTemplate = {
      # One server per node, so losing a node costs at most one JetStream replica.
      topologySpreadConstraints = {
        "kubernetes.io/hostname" = {
          maxSkew           = 1
          whenUnsatisfiable = var.topology_spread_when_unsatisfiable
        }
      }
      merge = {
        metadata = {
          annotations = var.enable_prometheus_exporter ? {
            "prometheus.io/scrape" = "true"
            "prometheus.io/port"   = "7777"
            "prometheus.io/path"   = "/metrics"
          } : {}
        }
        spec = {
          securityContext = {
            runAsNonRoot   = true
            runAsUser      = var.run_as_user
            runAsGroup     = var.run_as_user
            fsGroup        = var.run_as_user
            seccompProfile = { type = "RuntimeDefault" }
          }
        }
      }
    }

    podDisruptionBudget = { enabled = true }
    natsBox             = { enabled = var.enable_nats_box }
  }
}

resource "helm_release" "this" {
  name       = var.name
  namespace  = var.namespace
  repository = "https://nats-io.github.io/k8s/helm/charts/"
  chart      = "nats"
  version    = var.chart_version

  values = concat([yamlencode(local.values)], var.extra_values)

  atomic          = true
  cleanup_on_fail = true
  wait            = true
  timeout         = var.timeout_seconds
  max_history     = 10
}
