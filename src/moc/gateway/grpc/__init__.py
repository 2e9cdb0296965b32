"""moc's gRPC API (service modelops.ModelOps), on grpc.aio."""
