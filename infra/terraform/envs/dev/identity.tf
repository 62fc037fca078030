# Identity (issue 13): every service's certificate, NATS's server certificate, and the bootstrap Job that
# creates the streams as service:bootstrap (services may not). See README.md here, Identity.

locals {
  # One kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) per principal that runs here. cert-manager
  # writes them when cert_manager_issuer is set; otherwise create them out of band under these names.
  tls_secret_names = {
    for name in concat(local.services, ["bootstrap"]) : name => "fraud-${name}-tls"
  }
  nats_tls_secret_name = "fraud-nats-tls"

  services = ["ingest", "features", "scoring", "governance", "monitor"]
  service_dns_names = {
    ingest     = module.ingest.certificate_dns_names
    features   = module.features.certificate_dns_names
    scoring    = module.scoring.certificate_dns_names
    governance = module.governance.certificate_dns_names
    monitor    = module.monitor.certificate_dns_names
  }

  # What each certificate says: URI SAN = the principal's SPIFFE id; server names where it serves.
  certificates = merge(
    {
      for name in local.services : name => {
        secret_name = local.tls_secret_names[name]
        uri         = "spiffe://${var.trust_domain}/service/${name}"
        dns_names   = tolist(concat(local.service_dns_names[name], ["localhost"]))
        ip_address  = tolist(["127.0.0.1"]) # the exec probes call the service on loopback
      }
    },
    {
      bootstrap = {
        secret_name = local.tls_secret_names["bootstrap"]
        uri         = "spiffe://${var.trust_domain}/service/bootstrap"
        dns_names   = tolist([])
        ip_address  = tolist([])
      }
      nats = {
        secret_name = local.nats_tls_secret_name
        uri         = "spiffe://${var.trust_domain}/service/nats"
        dns_names   = tolist(module.nats.certificate_dns_names)
        ip_address  = tolist([])
      }
    },
  )

  triton_admin_mount = "/etc/fraud/triton-admin"
}

resource "kubernetes_manifest" "certificate" {
  for_each = { for name, spec in local.certificates : name => spec if var.cert_manager_issuer != null }

  manifest = {
    apiVersion = "cert-manager.io/v1"
    kind       = "Certificate"
    metadata = {
      name      = each.value.secret_name
      namespace = local.namespace
      labels    = local.labels
    }
    spec = {
      secretName  = each.value.secret_name
      duration    = var.certificate_duration
      renewBefore = var.certificate_renew_before
      privateKey = {
        algorithm      = "ECDSA"
        size           = 256
        rotationPolicy = "Always"
      }
      uris        = [each.value.uri]
      dnsNames    = each.value.dns_names
      ipAddresses = each.value.ip_address
      # clientAuth always (every principal calls NATS and its peers); serverAuth where it serves.
      usages = concat(["digital signature", "client auth"], length(each.value.dns_names) > 0 ? ["server auth"] : [])
      issuerRef = {
        name  = var.cert_manager_issuer.name
        kind  = var.cert_manager_issuer.kind
        group = "cert-manager.io"
      }
    }
  }
}

# Streams and the first role grants, as service:bootstrap, before any service starts (they depend on it).
resource "kubernetes_job_v1" "bootstrap" {
  metadata {
    name      = "fraud-bootstrap"
    namespace = local.namespace
    labels    = local.labels
  }

  spec {
    backoff_limit              = 10
    ttl_seconds_after_finished = 3600

    template {
      metadata {
        labels = merge(local.labels, { "app.kubernetes.io/name" = "bootstrap" })
      }

      spec {
        restart_policy                  = "OnFailure"
        automount_service_account_token = false
        enable_service_links            = false

        security_context {
          run_as_non_root = true
          run_as_user     = 10001
          run_as_group    = 10001
          fs_group        = 10001
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          name    = "bootstrap"
          image   = var.platform_image
          command = ["python", "-c", file("${path.module}/bootstrap.py"), jsonencode(var.bootstrap_role_grants)]

          env {
            name  = "FRAUD_NATS_URL"
            value = module.nats.client_url
          }
          env {
            name  = "FRAUD_TLS_CA_FILE"
            value = "/etc/fraud/tls/ca.crt"
          }
          env {
            name  = "FRAUD_BOOTSTRAP_TLS_CERT_FILE"
            value = "/etc/fraud/tls/tls.crt"
          }
          env {
            name  = "FRAUD_BOOTSTRAP_TLS_KEY_FILE"
            value = "/etc/fraud/tls/tls.key"
          }

          resources {
            requests = { cpu = "100m", memory = "128Mi" }
            limits   = { cpu = "500m", memory = "256Mi" }
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
            name       = "tls"
            mount_path = "/etc/fraud/tls"
            read_only  = true
          }
        }

        volume {
          name = "tls"
          secret {
            secret_name  = local.tls_secret_names["bootstrap"]
            default_mode = "0400"
          }
        }
      }
    }
  }

  wait_for_completion = true
  timeouts {
    create = "10m"
    update = "10m"
  }

  # Not on the certificates: the service certificates need the services' names (module outputs) and the
  # services wait for this Job; the pod simply waits until cert-manager has written its Secret.
  depends_on = [module.nats]
}
