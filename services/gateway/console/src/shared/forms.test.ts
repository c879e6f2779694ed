import { describe, expect, it } from 'vitest';
import { ApiError, NETWORK_ERROR } from './api';
import { errorMessage, parseIndexedField, ruleErrors, toFormErrors } from './forms';
import { translator } from './i18n';

const t = translator({ en: { 'error.email_taken': 'This email is already used.', 'error.network_error': 'Offline.' }, 'zh-CN': { 'error.email_taken': '邮箱已被使用。' } }, 'en');
const zh = translator({ en: { 'error.email_taken': 'This email is already used.' }, 'zh-CN': { 'error.email_taken': '邮箱已被使用。' } }, 'zh-CN');
const apiErr = (status: number, code: string, message: string, field?: string) => new ApiError(status, { code, message, field });

describe('toFormErrors', () => {
  const fields = ['email', 'password', 'name'];
  it('puts a field error next to its field, localised by code', () => {
    expect(toFormErrors(apiErr(409, 'email_taken', 'a user with email x exists', 'email'), fields, t)).toEqual({ fields: { email: 'This email is already used.' } });
    expect(toFormErrors(apiErr(409, 'email_taken', 'x', 'email'), fields, zh)).toEqual({ fields: { email: '邮箱已被使用。' } });
  });
  it("shows the server's message when the code has no translation", () => {
    expect(toFormErrors(apiErr(400, 'weak_password', 'password needs a digit', 'password'), fields, t)).toEqual({ fields: { password: 'password needs a digit' } });
  });
  it('renames server fields to form fields', () => {
    expect(toFormErrors(apiErr(400, 'invalid_email', 'bad', 'admin.email'), fields, t, { 'admin.email': 'email' })).toEqual({ fields: { email: 'bad' } });
  });
  it('reports errors without a known field on the form', () => {
    expect(toFormErrors(apiErr(403, 'forbidden', 'not allowed'), fields, t)).toEqual({ fields: {}, form: 'not allowed' });
    expect(toFormErrors(apiErr(400, 'unknown_field', 'unknown field "x"', 'x'), fields, t)).toEqual({ fields: {}, form: 'unknown field "x"' });
    expect(toFormErrors(new Error('boom'), fields, t)).toEqual({ fields: {}, form: 'boom' });
  });
  it('says the network is down in the user language', () => {
    expect(errorMessage(apiErr(0, NETWORK_ERROR, 'The server cannot be reached.'), t)).toBe('Offline.');
  });
});

describe('indexed fields (routing rules)', () => {
  it.each([
    ['routing_rules[1].condition', { list: 'routing_rules', index: 1, field: 'condition' }],
    ['routing_rules[0].action', { list: 'routing_rules', index: 0, field: 'action' }],
    ['routing_rules[12]', { list: 'routing_rules', index: 12, field: '' }],
    ['web.triggers.page_patterns[3]', { list: 'web.triggers.page_patterns', index: 3, field: '' }],
    ['email', null],
    [undefined, null],
  ])('%s', (field, want) => expect(parseIndexedField(field)).toEqual(want));

  it('places a CEL error under the rule and field it names', () => {
    const err = apiErr(400, 'invalid_rule', "ERROR: <input>:1:12: undeclared reference to 'usr_level'", 'routing_rules[1].condition');
    expect(ruleErrors(err, err.message)).toEqual({ rows: { 1: { condition: err.message } } });
    const act = apiErr(400, 'invalid_action', 'unknown action', 'routing_rules[0].action');
    expect(ruleErrors(act, 'unknown action')).toEqual({ rows: { 0: { action: 'unknown action' } } });
    expect(ruleErrors(apiErr(400, 'invalid_json', 'bad'), 'bad')).toEqual({ rows: {}, form: 'bad' });
  });
});
