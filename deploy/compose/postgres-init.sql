-- One database per ADX service (ADX_DATABASE_URLS in docker-compose.yml); Temporal's own two
-- are made by its admin tools. Run once, when the data volume is new.
CREATE DATABASE adx_auth;
CREATE DATABASE adx_user;
CREATE DATABASE adx_file;
CREATE DATABASE adx_workflow;
CREATE DATABASE adx_tenant;
