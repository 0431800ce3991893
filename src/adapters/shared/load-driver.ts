import { ZerolossError } from '../../core/errors.ts';

/**
 * Loads a backend's driver package, which the application installs only for the backends it uses
 * (optional peer dependencies). Each adapter calls this once, from its `<adapter>-driver.ts`, with a
 * top-level await, so importing `zeroloss/postgres` without `pg` fails at once with a message that names
 * the package to install, instead of a resolver error pointing into our dist folder.
 *
 * `load` is the adapter's own `() => import('pg')`: the specifier stays a literal, so TypeScript types the
 * module and bundlers see the dependency. Only "this very package is not installed" becomes
 * ZL_DRIVER_MISSING; a driver that is present but broken (one of its own dependencies missing, a syntax
 * error) is rethrown as it is, since installing the package again would not fix it.
 */
export async function loadDriver<M>(packageName: string, entryPoint: string, load: () => Promise<M>): Promise<M> {
  try {
    return await load();
  } catch (error) {
    if (isMissingPackage(error, packageName)) {
      throw new ZerolossError('ZL_DRIVER_MISSING', `${entryPoint} needs the '${packageName}' package: npm install ${packageName}`, {
        retryable: false,
        cause: error,
        details: { package: packageName },
      });
    }
    throw error;
  }
}

/** Node's resolver says "Cannot find package 'name' imported from …" for an uninstalled bare specifier. */
function isMissingPackage(error: unknown, packageName: string): boolean {
  const e = error as { code?: unknown; message?: unknown } | null;
  return e?.code === 'ERR_MODULE_NOT_FOUND' && typeof e.message === 'string' && e.message.includes(`'${packageName}'`);
}
