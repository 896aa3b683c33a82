import { describe, expect, it } from 'vitest';
import { CancelledError, NotFoundError, toErrorPayload } from '../../../core/api/errors';
import { LAB_API_METHODS } from '../../../core/api/lab-api';
import { parseRequest } from '../../../core/api/parse-request';
import { LabService } from '../../../core/service/lab-service';

describe('the LabApi contract', () => {
  it('lists every LabService method with its request validator', () => {
    const serviceMethods = Object.getOwnPropertyNames(LabService.prototype).filter(
      (name) => name !== 'constructor' && !['close', 'dbPath'].includes(name) && typeof (LabService.prototype as unknown as Record<string, unknown>)[name] === 'function',
    );
    const publicMethods = serviceMethods.filter((name) => !['openStore', 'prepare', 'registerRun', 'runSearch', 'summary', 'ticketContext', 'importedModel', 'modelEssentialSparsity', 'suspect', 'ownerKeyPath', 'ownerKey', 'importedOnDataset', 'jobRunner', 'onJobEvent', 'ownFingerprint'].includes(name));
    expect(Object.keys(LAB_API_METHODS).sort()).toEqual(publicMethods.sort());
  });

  it('refuses unknown fields and wrong types in every request, naming the field', () => {
    for (const [method, schema] of Object.entries(LAB_API_METHODS)) {
      expect(() => parseRequest(schema, { surprise: 1 }), method).toThrow(/surprise|Invalid request/);
    }
    expect(() => parseRequest(LAB_API_METHODS.searchImp, { model: 'lenet-300-100', dataset: 'mnist', levels: 2.5 })).toThrow(/levels: must be a whole number/);
    expect(() => parseRequest(LAB_API_METHODS.searchImp, { model: 'lenet-300-100', dataset: 'mnist', iterations: 10, epochs: 1 })).toThrow(/either iterations or epochs/);
    expect(() => parseRequest(LAB_API_METHODS.searchOneShot, { sparsity: 0.5 })).toThrow(/give a model and a dataset, or a ticket/);
  });

  it('sends errors across a boundary as a stable code and a message, never a stack', () => {
    expect(toErrorPayload(new NotFoundError('ticket', 'tk_x'))).toEqual({ code: 'NOT_FOUND', message: expect.stringMatching(/No ticket matches 'tk_x'/) });
    expect(toErrorPayload(new CancelledError()).code).toBe('CANCELLED');
    const internal = toErrorPayload(new TypeError('x is undefined'));
    expect(internal.code).toBe('INTERNAL');
    expect(Object.keys(internal)).toEqual(['code', 'message']);
  });
});
