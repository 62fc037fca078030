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
  description = "NATS client URL for the services (FRAUD_NATS_URL)."
  value       = "nats://${var.name}.${var.namespace}.svc.${var.cluster_domain}:4222"
}

output "replicas" {
  description = "NATS servers in the cluster (the most replicas a JetStream stream can have)."
  value       = var.replicas
}
