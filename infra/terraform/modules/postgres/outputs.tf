output "secret_name" {
  description = "Kubernetes Secret holding the connection (keys: database_url, username, password)."
  value       = kubernetes_secret_v1.this.metadata[0].name
}

output "database_url_key" {
  description = "Key of the SQLAlchemy URL in the Secret, for FRAUD_GOVERNANCE_DATABASE_URL."
  value       = local.database_url_key
}

output "host" {
  description = "Database host (the headless Service in_cluster)."
  value       = local.host
}

output "port" {
  description = "Database port."
  value       = var.port
}

output "database" {
  description = "Database name."
  value       = var.database
}

output "mode" {
  description = "external or in_cluster."
  value       = var.mode
}
