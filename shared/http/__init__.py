"""HTTP plumbing shared by the services' FastAPI apps."""
