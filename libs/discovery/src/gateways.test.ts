import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostnameMatches, listenerHostnames } from './gateways.ts';

test('a wildcard hostname stands for one label or more, never for none', () => {
  assert.equal(hostnameMatches('*.example.com', 'a.example.com'), true);
  assert.equal(hostnameMatches('*.example.com', 'a.b.example.com'), true);
  assert.equal(hostnameMatches('*.example.com', 'example.com'), false);
  assert.equal(hostnameMatches('*.example.com', 'aexample.com'), false);
  assert.equal(hostnameMatches('a.example.com', 'a.example.com'), true);
});

test('route hostnames intersected with a listener hostname, as the Gateway API says', () => {
  assert.deepEqual(listenerHostnames(undefined, []), ['*']);
  assert.deepEqual(listenerHostnames('*.example.com', []), ['*.example.com']);
  assert.deepEqual(listenerHostnames(undefined, ['A.example.com']), ['a.example.com']);
  assert.deepEqual(listenerHostnames('*.example.com', ['a.example.com', 'b.example.org']), ['a.example.com']);
  assert.deepEqual(listenerHostnames('a.example.com', ['*.example.com']), ['a.example.com']);
  assert.deepEqual(listenerHostnames('*.example.com', ['*.a.example.com']), ['*.a.example.com']);
  assert.deepEqual(listenerHostnames('*.a.example.com', ['*.example.com']), ['*.a.example.com']);
  assert.deepEqual(listenerHostnames('a.example.com', ['b.example.com']), []);
  assert.deepEqual(listenerHostnames('*.example.com', ['example.com']), []);
});
