// Placeholder until the sandbox lands: the signature the CLI relies on.
export interface SandboxOptions {
  quiet?: boolean;
}
export interface Sandbox {
  url: string;
  close(): Promise<void>;
}
export async function startSandbox(_options: SandboxOptions = {}): Promise<Sandbox> {
  throw new Error("sandbox not built yet");
}
