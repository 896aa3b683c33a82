// Requests are validated where they enter the service, whichever transport brought them.
import type { z } from 'zod';
import { InvalidRequestError } from './errors';

/** Parses a request with its schema; a failure is an InvalidRequestError naming each bad field. */
export function parseRequest<S extends z.ZodType>(schema: S, request: unknown): z.output<S> {
  const result = schema.safeParse(request ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.join('.');
    if (issue.code === 'unrecognized_keys') return `unknown option${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
    return field ? `${field}: ${issue.message}` : issue.message;
  });
  throw new InvalidRequestError(`Invalid request: ${problems.join('; ')}.`);
}
