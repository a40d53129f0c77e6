/**
 * An error whose message is meant for the person at the terminal: the CLI prints it as one
 * line (what is wrong, then how to fix it) instead of a stack trace.
 */
export class UserFacingError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'UserFacingError';
    this.hint = hint;
  }
  oneLine(): string {
    return this.hint ? `${this.message}: ${this.hint}` : this.message;
  }
}
