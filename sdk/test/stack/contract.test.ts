// The frontend contract through the router on the whole development stack (`adx dev`, started
// by tests/router/test_full_stack.py) with its seed data: alice@acme.test (owner of acme, member
// of globex) and bob@globex.test (owner of globex), password dev-password-123.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import {
  AdxGraphQLError,
  GetOperationWithUserDocument,
  GetUserDocument,
  LoginDocument,
  MeDocument,
  OnboardUserDocument,
  PendingMfaSetupDocument,
  SetupMfaDocument,
  SwitchTenantDocument,
  type AdxClient,
  type LoginMutation,
  type OperationUpdate,
} from "../../src/index.js";
import { clientFor, range } from "../support.js";

const TIMEOUT = { timeout: 90_000 };
// tenantId: without it the session acts in the tenant the account used last.
const ALICE = { email: "alice@acme.test", password: "dev-password-123", tenantId: "acme" };
// Bob sets up MFA below (never confirmed, so his logins stay password-only).
const BOB = { email: "bob@globex.test", password: "dev-password-123", tenantId: "globex" };

const clients: AdxClient[] = [];
function track(c: AdxClient): AdxClient {
  clients.push(c);
  return c;
}

const anonymous = track(clientFor(null));
let alice: LoginMutation["login"];

before(async () => {
  alice = (await anonymous.mutate(LoginDocument, ALICE)).login;
});

after(async () => {
  await Promise.all(clients.map((c) => c.dispose()));
});

test("login: a session and tokens for the seeded user", TIMEOUT, async () => {
  const { login } = await anonymous.mutate(LoginDocument, ALICE);
  assert.ok(login.accessToken.length > 20);
  assert.ok(login.refreshToken.length > 20);
  assert.equal(login.email, ALICE.email);
  // The User's id and email without a token: the auth subgraph answers them itself.
  assert.equal(login.user.email, ALICE.email);
  assert.equal(login.user.id, alice.user.id);
  assert.equal(login.tenantId, "acme");
  assert.ok(login.roles.includes("owner"));
  assert.ok(login.expiresIn > 0);
  await assert.rejects(
    anonymous.mutate(LoginDocument, { ...ALICE, password: "not-her-password" }),
    (error: unknown) => {
      assert.ok(error instanceof AdxGraphQLError, String(error));
      assert.equal(error.code, "UNAUTHENTICATED");
      return true;
    },
  );
});

test("me: the auth subgraph's account with its User from the user subgraph", TIMEOUT, async () => {
  const { me } = await track(clientFor(alice.accessToken)).query(MeDocument);
  assert.equal(me.email, ALICE.email);
  assert.equal(me.tenantId, "acme");
  assert.equal(me.user.id, alice.user.id);
  assert.equal(me.user.displayName, "Alice Anderson");
  assert.deepEqual(me.tenants.map((t) => t.tenantId).sort(), ["acme", "globex"]);
});

test("switchTenant: a new session acting in the other tenant", TIMEOUT, async () => {
  const session = (await anonymous.mutate(LoginDocument, ALICE)).login;
  const { switchTenant } = await track(clientFor(session.accessToken)).mutate(SwitchTenantDocument, {
    tenantId: "globex",
  });
  assert.equal(switchTenant.tenant.id, "globex");
  assert.equal(switchTenant.tenant.name, "Globex Corporation");
  assert.deepEqual(switchTenant.roles, ["member"]);
  assert.equal(switchTenant.user.id, alice.user.id);
  assert.notEqual(switchTenant.sessionId, session.sessionId);
  const { me } = await track(clientFor(switchTenant.accessToken)).query(MeDocument);
  assert.equal(me.tenantId, "globex");
  assert.deepEqual(me.roles, ["member"]);
});

test("onboardUser, then its progress to COMPLETED with ordered offsets (startAndWatch)", TIMEOUT, async () => {
  const client = track(clientFor(alice.accessToken));
  const email = `onboarded-${randomUUID().slice(0, 8)}@example.test`;
  const run = client.startAndWatch(OnboardUserDocument, { input: { email, displayName: "Olive Onboarded" } });
  const { onboardUser } = await run.started;
  assert.equal(onboardUser.type, "user_onboarding");
  const updates: OperationUpdate[] = [];
  for await (const update of run) updates.push(update);
  assert.deepEqual(
    updates.map((u) => u.offset),
    range(1, updates.length),
    "every offset once, in order",
  );
  const last = updates.at(-1);
  assert.ok(last?.terminal);
  assert.equal(last.status, "COMPLETED", JSON.stringify(last.error));
  assert.ok(updates.every((u) => u.operationId === onboardUser.id));

  // The same events again from the start: the log is kept, offsets are stable.
  const again: OperationUpdate[] = [];
  for await (const update of client.watchOperation(onboardUser.id)) again.push(update);
  assert.deepEqual(again.map((u) => u.offset), updates.map((u) => u.offset));

  // The operation with the user who started it: workflow subgraph + user subgraph.
  const { operation } = await client.query(GetOperationWithUserDocument, { id: onboardUser.id });
  assert.ok(operation);
  assert.equal(operation.status, "COMPLETED");
  assert.deepEqual(operation.user, { id: alice.user.id, email: ALICE.email, displayName: "Alice Anderson" });

  // Not an MFA setup: no secret on it.
  const { operation: onboarding } = await client.query(PendingMfaSetupDocument, { id: onboardUser.id });
  assert.ok(onboarding);
  assert.equal(onboarding.mfaSetup, null);

  // The new member is in the tenant.
  const { user } = await client.query(GetUserDocument, { id: userIdOf(last.result) });
  assert.equal(user?.email, email);
  assert.equal(user?.displayName, "Olive Onboarded");
});

function userIdOf(result: unknown): string {
  const found = JSON.stringify(result).match(/"user_?[iI]d"\s*:\s*"([^"]+)"/);
  assert.ok(found?.[1], `the onboarding result names the user: ${JSON.stringify(result)}`);
  return found[1];
}

test("setupMfa: the secret in its answer, again through operation(id) while it is pending", TIMEOUT, async () => {
  const bob = (await anonymous.mutate(LoginDocument, BOB)).login;
  assert.equal(bob.user.email, BOB.email);
  const client = track(clientFor(bob.accessToken));

  const { setupMfa: first } = await client.mutate(SetupMfaDocument);
  assert.equal(first.type, "mfa_setup");
  assert.ok(first.mfaSetup, "the mutation's answer holds the secret");
  assert.match(first.mfaSetup.otpauthUri, /^otpauth:\/\/totp\//);
  assert.ok(first.mfaSetup.otpauthUri.includes(`secret=${first.mfaSetup.secret}`));

  // The workflow subgraph resolves the operation, the auth subgraph its mfaSetup.
  const shown = (await client.query(PendingMfaSetupDocument, { id: first.id })).operation;
  assert.ok(shown);
  assert.equal(shown.id, first.id);
  assert.deepEqual(shown.mfaSetup, first.mfaSetup);

  // Someone else (another tenant) does not get to see the operation at all.
  await assert.rejects(
    track(clientFor(alice.accessToken)).query(PendingMfaSetupDocument, { id: first.id }),
    (error: unknown) => {
      assert.ok(error instanceof AdxGraphQLError, String(error));
      assert.equal(error.code, "NOT_FOUND");
      assert.equal(JSON.stringify(error.data ?? null).includes(first.mfaSetup!.secret), false);
      return true;
    },
  );

  // A second setup replaces the first: only the pending one shows a secret.
  const { setupMfa: second } = await client.mutate(SetupMfaDocument);
  assert.ok(second.mfaSetup);
  assert.notEqual(second.mfaSetup.secret, first.mfaSetup.secret);
  const replaced = (await client.query(PendingMfaSetupDocument, { id: first.id })).operation;
  assert.ok(replaced);
  assert.equal(replaced.mfaSetup, null);
  const pending = (await client.query(PendingMfaSetupDocument, { id: second.id })).operation;
  assert.deepEqual(pending?.mfaSetup, second.mfaSetup);
});
