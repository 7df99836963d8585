"""The file service: uploads, downloads, sharing, quotas, scanning and storage migration."""
