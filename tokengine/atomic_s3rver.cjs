// Preloaded into s3rver (`node -r atomic_s3rver.cjs s3rver.js ...`) by tokengine.services:
// every object it stores is written whole or not at all, and is on disk before it answers.
//
// s3rver 3.7.1 writes an object straight to its final file and answers the PUT when its
// input ends, not when the file is written: a SIGKILL left a zero-length record batch that
// tansu could not read again ("TryGetError"), and an answered PUT could still be in
// s3rver's buffers. Here the object, its md5 and its metadata go to temporary files
// (names s3rver's listing ignores), are flushed with fdatasync, and are renamed into place,
// the object last: a reader sees the old object or the new one, never a part.
//
// s3rver also ignores S3's conditional writes (`If-None-Match: *`, `If-Match: <etag>`),
// and tansu's log rests on them: a broker that starts again knows no partition's
// watermark until it reads it, and its first produce to a partition writes the watermark
// "create only" from offset 0, expecting a refusal when one exists. s3rver let that
// overwrite watermark.json and then record batch 0, 1, ...: every record acknowledged
// before the restart was lost (seen: a transfer's credit leg gone after `up` was killed
// and started again). Here a conditional PUT is checked, and refused with S3's
// 412 PreconditionFailed, under a lock per key so that two writers cannot both pass.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const s3rverMain = process.argv[1];
const s3rverLib = path.join(path.dirname(s3rverMain), '..', 'lib');
const FilesystemStore = require(path.join(s3rverLib, 'stores', 'filesystem.js'));
const objectController = require(path.join(s3rverLib, 'controllers', 'object.js'));
const S3Error = require(path.join(s3rverLib, 'models', 'error.js'));
let counter = 0;

function temporaryPath(finalPath) {
  counter += 1;
  return `${finalPath}.tmp-${process.pid}-${counter}`;
}

async function writeDurably(finalPath, data) {
  const temporary = temporaryPath(finalPath);
  const handle = await fs.promises.open(temporary, 'w');
  try {
    await handle.writeFile(data);
    await handle.datasync();
  } finally {
    await handle.close();
  }
  return temporary;
}

async function readWhole(content) {
  if (Buffer.isBuffer(content)) return content;
  const chunks = [];
  for await (const chunk of content) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

FilesystemStore.prototype.putObject = async function putObject(object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  const md5Path = this.getResourcePath(object.bucket, object.key, 'object.md5');
  const metadataPath = this.getResourcePath(object.bucket, object.key, 'metadata.json');
  await fs.promises.mkdir(path.dirname(objectPath), { recursive: true });
  const content = await readWhole(object.content);
  const md5 = crypto.createHash('md5').update(content).digest('hex');
  const metadata = {};
  for (const [key, value] of Object.entries(object.metadata || {})) {
    if (object.constructor.ALLOWED_METADATA.includes(key) || key.startsWith('x-amz-meta-')) {
      metadata[key] = value;
    }
  }
  const written = [
    [await writeDurably(md5Path, md5), md5Path],
    [await writeDurably(metadataPath, JSON.stringify(metadata, null, 2)), metadataPath],
    [await writeDurably(objectPath, content), objectPath],
  ];
  for (const [temporary, finalPath] of written) {
    await fs.promises.rename(temporary, finalPath);
  }
  return { size: content.length, md5 };
};

async function storedEtag(store, bucket, key) {
  // the object is renamed into place last: without it there is no object, whatever md5 says
  try {
    await fs.promises.access(store.getResourcePath(bucket, key, 'object'));
    return (await fs.promises.readFile(store.getResourcePath(bucket, key, 'object.md5'), 'utf8'))
      .trim();
  } catch (error) {
    if (error.code === 'ENOENT') return null;
    throw error;
  }
}

function etags(header) {
  return header.split(',').map((tag) => tag.trim().replace(/^W\//, '').replace(/"/g, ''));
}

// Which precondition of a PUT fails against the stored object, or null when all hold. An
// `If-Match` on a missing object fails too (tansu then reads the object again and retries).
function failedCondition(headers, etag) {
  const ifNoneMatch = headers['if-none-match'];
  if (ifNoneMatch !== undefined && etag !== null) {
    const tags = etags(ifNoneMatch);
    if (tags.includes('*') || tags.includes(etag)) return 'If-None-Match';
  }
  const ifMatch = headers['if-match'];
  if (ifMatch !== undefined) {
    const tags = etags(ifMatch);
    if (etag === null || !(tags.includes('*') || tags.includes(etag))) return 'If-Match';
  }
  return null;
}

const keyLocks = new Map(); // bucket/key -> the tail of the writes waiting for it

async function underKeyLock(name, work) {
  const before = keyLocks.get(name) || Promise.resolve();
  let release;
  const mine = new Promise((resolve) => {
    release = resolve;
  });
  const tail = before.then(() => mine);
  keyLocks.set(name, tail);
  await before;
  try {
    return await work();
  } finally {
    release();
    if (keyLocks.get(name) === tail) keyLocks.delete(name);
  }
}

const unconditionalPutObject = objectController.putObject;

objectController.putObject = async function conditionalPutObject(ctx) {
  const { bucket, key } = ctx.params;
  return underKeyLock(`${bucket}/${key}`, async () => {
    const failed = failedCondition(ctx.headers, await storedEtag(ctx.store, bucket, key));
    if (failed !== null) {
      for await (const _ of ctx.req); // the body is not stored: read it to its end
      throw new S3Error(
        'PreconditionFailed',
        'At least one of the pre-conditions you specified did not hold',
        { Condition: failed },
      );
    }
    return unconditionalPutObject(ctx);
  });
};
