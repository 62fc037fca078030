provider "kubernetes" {
  config_path    = pathexpand(var.kubeconfig_path)
  config_context = var.kube_context
}

provider "helm" {
  kubernetes {
    config_path    = pathexpand(var.kubeconfig_path)
    config_context = var.kube_context
  }
}

# The token comes from VAULT_TOKEN (or another provider auth method) of whoever applies, never from a file here.
provider "vault" {
  address = var.vault_addr
}

locals {
  namespace = kubernetes_namespace_v1.this.metadata[0].name

  labels = {
    "app.kubernetes.io/part-of" = "fraud-platform"
    "fraud.platform/env"        = "dev"
  }

  # Services that read secrets through Vault (least privilege: the others get no Vault identity).
  vault_services = {
    ingest     = { read_paths = ["pan-tokenization"] }
    governance = { read_paths = ["audit-signing", "governance-db"] }
  }
  vault_secret_names = {
    for name in keys(local.vault_services) : name => (
      var.issue_vault_secret_ids ? kubernetes_secret_v1.vault_approle[name].metadata[0].name : "fraud-${name}-vault"
    )
  }

  artifacts_path = "/srv/fraud/artifacts"
}

resource "kubernetes_namespace_v1" "this" {
  metadata {
    name = var.namespace
    labels = merge(local.labels, {
      # baseline is enforced (the nats chart's pods are not audited against restricted); every pod this
      # configuration writes itself also meets restricted, which is audited and warned about.
      "pod-security.kubernetes.io/enforce" = "baseline"
      "pod-security.kubernetes.io/audit"   = "restricted"
      "pod-security.kubernetes.io/warn"    = "restricted"
    })
  }
}

module "nats" {
  source = "../../modules/nats"

  namespace                          = local.namespace
  chart_version                      = var.nats_chart_version
  replicas                           = var.nats_replicas
  file_storage_size                  = var.nats_storage_size
  storage_class_name                 = var.storage_class_name
  topology_spread_when_unsatisfiable = var.nats_spread_when_unsatisfiable

  # TLS with client certificates on the client port; each principal's permissions are the module's default
  # (fraudshared.nats_access.NATS_ACCESS).
  tls_secret_name = local.nats_tls_secret_name
  trust_domain    = var.trust_domain
}

module "triton" {
  source = "../../modules/triton"

  namespace                      = local.namespace
  image                          = var.triton_image
  gpu_count                      = var.triton_gpu_count
  model_repository_storage_class = var.shared_storage_class_name
  labels                         = local.labels
}

module "postgres" {
  source = "../../modules/postgres"

  namespace          = local.namespace
  mode               = var.postgres_mode
  host               = var.postgres_host
  database           = var.postgres_database
  username           = var.postgres_username
  password           = var.postgres_password
  storage_class_name = var.storage_class_name
  labels             = local.labels
}

module "vault_policy" {
  source = "../../modules/vault-policy"

  services               = local.vault_services
  name_prefix            = var.namespace
  kv_mount               = var.vault_kv_mount
  approle_mount          = var.vault_approle_mount
  create_approle_backend = var.vault_create_approle_backend
  bound_cidrs            = var.vault_bound_cidrs
  issue_secret_ids       = var.issue_vault_secret_ids
}

# VAULT_ROLE_ID / VAULT_SECRET_ID for the services that read secrets.
resource "kubernetes_secret_v1" "vault_approle" {
  for_each = var.issue_vault_secret_ids ? local.vault_services : {}

  metadata {
    name      = "fraud-${each.key}-vault"
    namespace = local.namespace
    labels    = local.labels
  }

  data = {
    role_id   = module.vault_policy.role_ids[each.key]
    secret_id = module.vault_policy.secret_ids[each.key]
  }
}

# Governance's content-addressed artifact store, shared by every governance instance.
resource "kubernetes_persistent_volume_claim_v1" "governance_artifacts" {
  metadata {
    name      = "governance-artifacts"
    namespace = local.namespace
    labels    = local.labels
  }

  spec {
    access_modes       = ["ReadWriteMany"]
    storage_class_name = var.shared_storage_class_name
    resources {
      requests = {
        storage = "10Gi"
      }
    }
  }

  wait_until_bound = false
}

module "ingest" {
  source = "../../modules/fraud-service"

  name          = "ingest"
  namespace     = local.namespace
  image         = var.platform_image
  replicas      = var.service_replicas["ingest"]
  nats_url      = module.nats.client_url
  otlp_endpoint = var.otlp_endpoint
  log_level     = var.log_level
  labels        = local.labels

  tls_secret_name = local.tls_secret_names["ingest"]
  trust_domain    = var.trust_domain
  depends_on      = [kubernetes_job_v1.bootstrap] # the streams exist before the service starts

  env = {
    FRAUD_FEATURES_ADDR = module.features.address
    FRAUD_SCORING_ADDR  = module.scoring.address
  }

  # The PAN-tokenization HMAC key comes from Vault (secret/data/pan-tokenization).
  vault_addr                = var.vault_addr
  vault_approle_secret_name = local.vault_secret_names["ingest"]
}

module "features" {
  source = "../../modules/fraud-service"

  name          = "features"
  namespace     = local.namespace
  image         = var.platform_image
  replicas      = var.service_replicas["features"]
  nats_url      = module.nats.client_url
  otlp_endpoint = var.otlp_endpoint
  log_level     = var.log_level
  labels        = local.labels

  tls_secret_name = local.tls_secret_names["features"]
  trust_domain    = var.trust_domain
  depends_on      = [kubernetes_job_v1.bootstrap] # the streams exist before the service starts

  # One owner per card partition: never two pods at once, not even during a rollout.
  deployment_strategy = "Recreate"
  resources = {
    requests = { cpu = "500m", memory = "512Mi" }
    limits   = { cpu = "2", memory = "2Gi" }
  }
}

module "scoring" {
  source = "../../modules/fraud-service"

  name          = "scoring"
  namespace     = local.namespace
  image         = var.platform_image
  replicas      = var.service_replicas["scoring"]
  nats_url      = module.nats.client_url
  otlp_endpoint = var.otlp_endpoint
  log_level     = var.log_level
  labels        = local.labels

  tls_secret_name = local.tls_secret_names["scoring"]
  trust_domain    = var.trust_domain
  depends_on      = [kubernetes_job_v1.bootstrap] # the streams exist before the service starts

  env = {
    FRAUD_TRITON_GRPC_URL = module.triton.grpc_address
    FRAUD_GOVERNANCE_ADDR = module.governance.address
  }

  autoscaling = {
    min_replicas = var.service_replicas["scoring"]
    max_replicas = var.service_replicas["scoring"] * 3
  }
}

module "governance" {
  source = "../../modules/fraud-service"

  name          = "governance"
  namespace     = local.namespace
  image         = var.platform_image
  replicas      = var.service_replicas["governance"]
  nats_url      = module.nats.client_url
  otlp_endpoint = var.otlp_endpoint
  log_level     = var.log_level
  labels        = local.labels

  tls_secret_name = local.tls_secret_names["governance"]
  trust_domain    = var.trust_domain
  depends_on      = [kubernetes_job_v1.bootstrap] # the streams exist before the service starts

  env = {
    FRAUD_TRITON_GRPC_URL   = module.triton.grpc_address
    FRAUD_TRITON_MODEL_REPO = module.triton.model_repository_path
    # NVIDIA's image runs ONNX models natively (the pip tritonserver used locally needs "python").
    FRAUD_TRITON_BACKEND = "onnxruntime_onnx"
    FRAUD_ARTIFACT_DIR   = local.artifacts_path
    # The header value Triton's model-management APIs require, as a file (governance only).
    FRAUD_TRITON_ADMIN_KEY_FILE = "${local.triton_admin_mount}/${module.triton.admin_key_secret_key}"
  }
  secret_env = {
    FRAUD_GOVERNANCE_DATABASE_URL = {
      secret_name = module.postgres.secret_name
      key         = module.postgres.database_url_key
    }
  }

  # Governance writes the model repository Triton reads (same claim, same path) and its artifact store.
  volumes = {
    models = {
      claim_name = module.triton.model_repository_claim_name
      mount_path = module.triton.model_repository_path
    }
    artifacts = {
      claim_name = kubernetes_persistent_volume_claim_v1.governance_artifacts.metadata[0].name
      mount_path = local.artifacts_path
    }
  }
  # Triton's admin key: mounted into governance only (no other service gets the Secret).
  secret_volumes = {
    triton-admin = {
      secret_name = module.triton.admin_key_secret_name
      mount_path  = local.triton_admin_mount
    }
  }

  vault_addr                = var.vault_addr
  vault_approle_secret_name = local.vault_secret_names["governance"]
}

module "monitor" {
  source = "../../modules/fraud-service"

  name          = "monitor"
  namespace     = local.namespace
  image         = var.platform_image
  replicas      = var.service_replicas["monitor"]
  nats_url      = module.nats.client_url
  otlp_endpoint = var.otlp_endpoint
  log_level     = var.log_level
  labels        = local.labels

  tls_secret_name = local.tls_secret_names["monitor"]
  trust_domain    = var.trust_domain
  depends_on      = [kubernetes_job_v1.bootstrap] # the streams exist before the service starts
}
