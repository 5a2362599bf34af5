// Preloaded into s3rver (`node -r atomic_s3rver.cjs s3rver.js ...`) by tokengine.services:
// every object it stores is written whole or not at all, and is on disk before it answers.
//
// s3rver 3.7.1 writes an object straight to its final file and answers the PUT when its
// input ends, not when the file is written: a SIGKILL left a zero-length record batch that
// tansu could not read again ("TryGetError"), and an answered PUT could still be in
// s3rver's buffers. Here the object, its md5 and its metadata go to temporary files
// (names s3rver's listing ignores), are flushed with fdatasync, and are renamed into place,
// the object last: a reader sees the old object or the new one, never a part.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const s3rverMain = process.argv[1];
const FilesystemStore = require(
  path.join(path.dirname(s3rverMain), '..', 'lib', 'stores', 'filesystem.js'),
);
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
