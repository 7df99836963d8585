"""The user service: profiles, preferences, the tenant directory and the activity log; profile
sync, deactivation and bulk workflows, and the read workflows BFFs aggregate."""
