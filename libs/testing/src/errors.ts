/** Stable error codes of the test bed. */
export type TestbedErrorCode =
  | 'CAUSEWAY_TESTBED_BINARY_MISSING'
  | 'CAUSEWAY_TESTBED_START_FAILED'
  | 'CAUSEWAY_TESTBED_NOT_READY'
  | 'CAUSEWAY_TESTBED_BAD_OPTION';

/** An error raised while starting or stopping a real server of the test bed. */
export class TestbedError extends Error {
  readonly code: TestbedErrorCode;
  constructor(code: TestbedErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TestbedError';
    this.code = code;
  }
}
