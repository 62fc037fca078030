output "namespace" {
  description = "Namespace holding the platform."
  value       = local.namespace
}

output "ingest_address" {
  description = "In-cluster gRPC address of IngestService.ScoreTransaction, the platform's entry point."
  value       = module.ingest.address
}

output "service_addresses" {
  description = "In-cluster gRPC address of every service."
  value = {
    ingest     = module.ingest.address
    features   = module.features.address
    scoring    = module.scoring.address
    governance = module.governance.address
    monitor    = module.monitor.address
  }
}

output "nats_url" {
  description = "NATS client URL (FRAUD_NATS_URL)."
  value       = module.nats.client_url
}

output "triton_grpc_address" {
  description = "Triton gRPC address (FRAUD_TRITON_GRPC_URL)."
  value       = module.triton.grpc_address
}

output "postgres_secret_name" {
  description = "Secret holding the governance registry's database URL."
  value       = module.postgres.secret_name
}

output "vault_role_names" {
  description = "AppRole role per service that reads secrets."
  value       = module.vault_policy.role_names
}

output "tls_secret_names" {
  description = "kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) each principal running here uses: written by cert-manager with cert_manager_issuer, else to be created out of band."
  value       = merge(local.tls_secret_names, { nats = local.nats_tls_secret_name })
}

output "nats_users" {
  description = "SPIFFE ids NATS accepts (one user per principal of the nats module's permissions)."
  value       = module.nats.users
}
