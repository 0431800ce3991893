import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadDriver } from '../../../src/adapters/shared/load-driver.ts';
import { ZerolossError } from '../../../src/core/errors.ts';

// A name no registry will ever hold; a variable, so TypeScript does not try to resolve it.
const MISSING = 'zeroloss-test-no-such-driver-package';

test('a driver package that is not installed gives ZL_DRIVER_MISSING with the install command', async () => {
  await assert.rejects(
    loadDriver(MISSING, 'zeroloss/example', () => import(MISSING)),
    (error: unknown) => {
      assert.ok(error instanceof ZerolossError);
      assert.equal(error.code, 'ZL_DRIVER_MISSING');
      assert.equal(error.retryable, false);
      assert.equal(error.message, `zeroloss/example needs the '${MISSING}' package: npm install ${MISSING}`);
      assert.deepEqual(error.details, { package: MISSING });
      assert.equal((error.cause as { code?: string }).code, 'ERR_MODULE_NOT_FOUND');
      return true;
    },
  );
});

test('a missing package other than the driver itself is not reported as the driver missing', async () => {
  // The driver is there but one of its own imports is not: reinstalling the driver would not help.
  await assert.rejects(
    loadDriver('pg', 'zeroloss/postgres', () => import(MISSING)),
    (error: unknown) => !(error instanceof ZerolossError) && (error as { code?: string }).code === 'ERR_MODULE_NOT_FOUND',
  );
});

test('an installed driver is returned as its module', async () => {
  const pg = await loadDriver('pg', 'zeroloss/postgres', () => import('pg'));
  assert.equal(typeof pg.Pool, 'function');
});
