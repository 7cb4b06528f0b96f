import { generateKeyPair as generateKeyPairCallback, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';

const generate = promisify(generateKeyPairCallback);

/** Key types Causeway issues. ECDSA P-256 is the default: cheaper TLS handshakes. */
export type KeyType = 'ecdsa-p256' | 'rsa-2048';
export const KEY_TYPES: readonly KeyType[] = ['ecdsa-p256', 'rsa-2048'];

export interface KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

/** A new key pair from node:crypto (OpenSSL). */
export async function generateKeyPair(type: KeyType = 'ecdsa-p256'): Promise<KeyPair> {
  return type === 'rsa-2048'
    ? await generate('rsa', { modulusLength: 2048 })
    : await generate('ec', { namedCurve: 'prime256v1' });
}

/** The key type of a key, or undefined for one Causeway does not issue. */
export function keyTypeOf(key: KeyObject): KeyType | undefined {
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
    return 'ecdsa-p256';
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048)
    return 'rsa-2048';
  return undefined;
}

export function privateKeyToPem(key: KeyObject): string {
  return key.export({ type: 'pkcs8', format: 'pem' }) as string;
}

export function publicKeyToPem(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }) as string;
}
