/** Why a load run could not start or had to stop (individual request failures are counted, not thrown). */
export type LoadgenErrorCode = 'BAD_OPTION' | 'CONNECT' | 'ABORTED';

/** An error the load generator raises itself; `code` tells callers what went wrong without parsing the message. */
export class LoadgenError extends Error {
  /** Machine-readable reason. */
  readonly code: LoadgenErrorCode;

  constructor(code: LoadgenErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LoadgenError';
    this.code = code;
  }
}
