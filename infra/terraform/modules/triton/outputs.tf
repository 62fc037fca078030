output "service_name" {
  description = "Name of the Triton Service."
  value       = kubernetes_service_v1.this.metadata[0].name
}

output "grpc_address" {
  description = "Triton gRPC endpoint host:port (FRAUD_TRITON_GRPC_URL, the form tritonclient wants)."
  value       = "${kubernetes_service_v1.this.metadata[0].name}.${var.namespace}.svc.${var.cluster_domain}:8001"
}

output "http_address" {
  description = "Triton HTTP endpoint host:port (health; the NetworkPolicy admits no pod to it)."
  value       = "${kubernetes_service_v1.this.metadata[0].name}.${var.namespace}.svc.${var.cluster_domain}:8000"
}

output "model_repository_claim_name" {
  description = "PersistentVolumeClaim of the model repository; mount it into governance at model_repository_path."
  value       = local.claim_name
}

output "model_repository_path" {
  description = "Where Triton reads the model repository (FRAUD_TRITON_MODEL_REPO for governance when mounted at the same path)."
  value       = local.model_repository_path
}

output "deployment_name" {
  description = "Name of the Triton Deployment."
  value       = kubernetes_deployment_v1.this.metadata[0].name
}

output "admin_key_secret_name" {
  description = "Secret holding Triton's admin key (key admin_key_secret_key): mount it into governance only and point FRAUD_TRITON_ADMIN_KEY_FILE at the file."
  value       = local.admin_key_secret_name
}

output "admin_key_secret_key" {
  description = "Key of the admin key inside admin_key_secret_name (\"admin-key\")."
  value       = local.admin_key_secret_key
}
