import rootPackage from '../../../package.json' with { type: 'json' };

/** The Causeway release these components belong to. */
export const CAUSEWAY_VERSION: string = rootPackage.version;
