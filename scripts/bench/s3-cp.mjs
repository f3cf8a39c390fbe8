#!/usr/bin/env node
// The shell sequence's uploader: no `aws` or `mc` on this machine, so a plain @aws-sdk/client-s3 copy in its own
// process, streaming the file in 16 MiB parts, 4 at a time (Lifeboat's defaults), with the SDK's default checksums.
//   node scripts/bench/s3-cp.mjs put FILE BUCKET KEY
//   node scripts/bench/s3-cp.mjs get BUCKET KEY FILE
// Environment: S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (default us-east-1).
import { createWriteStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';

const PART = 16 * 1024 * 1024;
const QUEUE = 4;

const client = new S3Client({
  endpoint: process.env.S3_ENDPOINT,
  region: process.env.AWS_REGION || 'us-east-1',
  forcePathStyle: true,
});

async function put(file, Bucket, Key) {
  const size = (await stat(file)).size;
  const fh = await open(file, 'r');
  const read = async (start, length) => {
    const buf = Buffer.allocUnsafe(length);
    const { bytesRead } = await fh.read(buf, 0, length, start);
    return buf.subarray(0, bytesRead);
  };
  try {
    if (size <= PART) {
      await client.send(new PutObjectCommand({ Bucket, Key, Body: await read(0, size), ContentLength: size }));
      return;
    }
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key }));
    try {
      const count = Math.ceil(size / PART);
      const parts = new Array(count);
      let next = 0;
      const lane = async () => {
        while (next < count) {
          const i = next++;
          const body = await read(i * PART, Math.min(PART, size - i * PART));
          const { ETag } = await client.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: i + 1, Body: body, ContentLength: body.length }));
          parts[i] = { ETag, PartNumber: i + 1 };
        }
      };
      await Promise.all(Array.from({ length: Math.min(QUEUE, count) }, lane));
      await client.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })).catch(() => {});
      throw err;
    }
  } finally {
    await fh.close();
  }
}

async function get(Bucket, Key, file) {
  const res = await client.send(new GetObjectCommand({ Bucket, Key }));
  await pipeline(res.Body, createWriteStream(file));
}

const [cmd, ...args] = process.argv.slice(2);
try {
  if (cmd === 'put' && args.length === 3) await put(args[0], args[1], args[2]);
  else if (cmd === 'get' && args.length === 3) await get(args[0], args[1], args[2]);
  else {
    console.error('usage: s3-cp.mjs put FILE BUCKET KEY | get BUCKET KEY FILE');
    process.exit(2);
  }
} catch (err) {
  console.error(`s3-cp: ${cmd}: ${err?.message ?? err}`);
  process.exit(1);
}
