output "release_name" {
  description = "Helm release name."
  value       = helm_release.this.name
}

output "chart_version" {
  description = "Installed nats chart version."
  value       = helm_release.this.version
}

output "service_name" {
  description = "Client Service of the NATS cluster."
  value       = var.name
}

output "client_url" {
  description = "NATS client URL for the services (FRAUD_NATS_URL): tls://, the client port requires a certificate."
  value       = "tls://${var.name}.${var.namespace}.svc.${var.cluster_domain}:4222"
}

output "certificate_dns_names" {
  description = "DNS names the server certificate (tls_secret_name) must carry for clients to verify it (client_url's host among them)."
  value = [
    var.name,
    "${var.name}.${var.namespace}",
    "${var.name}.${var.namespace}.svc",
    "${var.name}.${var.namespace}.svc.${var.cluster_domain}",
    "localhost",
  ]
}

output "users" {
  description = "The SPIFFE id of every NATS user (principal certificates that may connect)."
  value       = [for u in local.users : u.user]
}

output "replicas" {
  description = "NATS servers in the cluster (the most replicas a JetStream stream can have)."
  value       = var.replicas
}
