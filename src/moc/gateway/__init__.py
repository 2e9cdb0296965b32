"""The transports: HTTP (native, later OpenAI and Ollama shapes) and gRPC.
They validate input into typed requests, call the services, and map errors to
status codes; they hold no state of their own."""
