"""User BFF (4004): the User entity, the member directory, preferences, the dashboard
aggregate, onboarding and deactivation."""
