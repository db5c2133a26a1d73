export * from './kvs.js';
