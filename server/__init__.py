"""HTTP server (Starlette): thin handlers over pgqueue. Built in a later issue."""
