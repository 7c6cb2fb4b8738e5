#!/usr/bin/env node
/*
 * Wire-compatibility test: drive our IMGAPI server with the original
 * Joyent client (npm `sdc-clients`, lib/imgapi.js).
 *
 * Usage: node interop.js <server-url> <public|dc|channels>
 *
 * Modes: `public` and `dc` are the server's IMGAPI_MODE; `channels` expects a
 * `private`-mode server with the channels dev (default), staging, release
 * (see run.sh) and runs the channel promotion flow (use-cases UC8).
 *
 * The server must run with auth type "none"; the client is created without
 * `user`/`sign`/`password`, so no Authorization header is sent
 * (IMGAPI.prototype._getAuthHeaders returns {} when there is no signer).
 *
 * Prints one line per passed check; exits non-zero on the first failure with
 * the request that failed and what came back.
 */
'use strict';

var assert = require('assert');
var crypto = require('crypto');
var fs = require('fs');
var os = require('os');
var path = require('path');
var imgapi = require('sdc-clients/lib/imgapi');
var imgmanifest = require('imgmanifest');

var URL = process.argv[2];
var MODE = process.argv[3];
if (!URL || ['public', 'dc', 'channels', 'docker'].indexOf(MODE) === -1) {
    console.error('usage: node interop.js <url> <public|dc|channels|docker>');
    process.exit(2);
}

// Accounts from spec/use-cases.md.
var ADMIN = '930896af-bf8c-48d4-885c-6573a94b1853';
var ALICE = '86055c40-2547-11e2-8a6b-4bb37edc84ba';
var BOB = '91ba0e64-2547-11e2-a972-df579e5fddb3';
var CAROL = 'a0b6b534-2547-11e2-b758-63a2afd747d1';

var RUN = crypto.randomBytes(4).toString('hex');
var TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'imgapi-interop-'));
var passed = 0;
var current = '(setup)';

var client = imgapi.createClient({url: URL, version: '~2'});


// ---- helpers

function ok(msg) {
    passed++;
    console.log('ok %d - [%s] %s', passed, MODE, msg);
}

/*
 * Call a callback-style client method; resolve with {data, res}. The client
 * uses `(err, data, res)` for JSON calls and `(err, res)` for getImageFile /
 * getImageIcon / deleteImage; `shape` says which.
 */
function call(label, method, args, shape, cl) {
    current = label;
    cl = cl || client;
    return new Promise(function (resolve, reject) {
        cl[method].apply(cl, args.concat([function (err, a, b) {
            if (err) {
                err.imgapiCall = label;
                err.imgapiRes = (shape === 'res' ? a : b);
                reject(err);
                return;
            }
            if (shape === 'res') {
                resolve({res: a});
            } else {
                resolve({data: a, res: b});
            }
        }]));
    });
}

/* Expect the call to fail; return the error. */
async function callFails(label, method, args, shape, cl) {
    var r;
    try {
        r = await call(label, method, args, shape, cl);
    } catch (err) {
        return err;
    }
    var e = new assert.AssertionError({
        message: label + ': expected an error, got HTTP ' +
            (r.res && r.res.statusCode) + ' ' + JSON.stringify(r.data)
    });
    throw e;
}

/* restCode of a JSON-client error, or the body code of a raw-client error. */
function codeOf(err) {
    return err.restCode || (err.body && err.body.code);
}

function assertErr(err, status, code, what) {
    var desc = what + ': got HTTP ' + err.statusCode + ' restCode=' +
        codeOf(err) + ' body=' + JSON.stringify(err.body) +
        ' message=' + JSON.stringify(err.message);
    assert.strictEqual(err.statusCode, status, desc);
    assert.strictEqual(codeOf(err), code, desc);
}

function sha1File(p) {
    return crypto.createHash('sha1').update(fs.readFileSync(p)).digest('hex');
}

function uuids(images) {
    return images.map(function (i) { return i.uuid; });
}

function listHas(images, uuid) {
    return uuids(images).filter(function (u) { return u === uuid; }).length;
}

var UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// A valid 1x1 PNG.
var PNG = Buffer.from(
    '89504e470d0a1a0a0000000d4948445200000001000000010806000000' +
    '1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082',
    'hex');


// ---- the flows

async function pingChecks() {
    var r = await call('GET /ping', 'ping', []);
    assert.strictEqual(r.res.statusCode, 200);
    assert.strictEqual(r.data.ping, 'pong', JSON.stringify(r.data));
    assert.strictEqual(r.data.imgapi, true, JSON.stringify(r.data));
    assert.strictEqual(typeof (r.data.version), 'string');
    if (MODE === 'dc') {
        assert.strictEqual(typeof (r.data.pid), 'number',
            'dc mode ping includes pid: ' + JSON.stringify(r.data));
    } else {
        assert.deepStrictEqual(Object.keys(r.data),
            ['ping', 'version', 'imgapi'],
            'unauthenticated non-dc ping keys: ' + JSON.stringify(r.data));
    }
    ok('ping: ' + JSON.stringify(r.data));
}

/*
 * Operator lifecycle (no `account`): create, add file, activate, get, list,
 * download, icon, update, disable/enable, ACL, delete.
 */
async function operatorLifecycle() {
    var name = 'interop-' + RUN;
    var owner = (MODE === 'dc' ? ADMIN : crypto.randomUUID());
    var manifest = {
        name: name,
        version: '1.0.0',
        type: 'zone-dataset',
        os: 'smartos',
        owner: owner,
        public: true,
        description: 'sdc-clients interop image',
        requirements: {min_platform: {'7.0': '20180830T001556Z'}},
        tags: {role: 'interop', run: RUN}
    };

    // CreateImage
    var r = await call('POST /images', 'createImage', [manifest]);
    var img = r.data;
    assert.ok(UUID_RE.test(img.uuid), 'uuid: ' + img.uuid);
    assert.strictEqual(img.v, 2);
    assert.strictEqual(img.owner, owner);
    assert.strictEqual(img.name, name);
    assert.strictEqual(img.version, '1.0.0');
    assert.strictEqual(img.state, 'unactivated');
    assert.strictEqual(img.disabled, false);
    assert.strictEqual(img.public, true);
    assert.deepStrictEqual(img.files, []);
    assert.deepStrictEqual(img.tags, manifest.tags);
    assert.deepStrictEqual(img.requirements, manifest.requirements);
    assert.ok(!('published_at' in img), 'no published_at before activation');
    assert.ok(!('acl' in img), 'empty acl omitted');
    assert.ok(r.res.headers.etag, 'CreateImage response has an ETag');
    ok('createImage -> ' + img.uuid + ' state=unactivated public=true');
    var uuid = img.uuid;

    // AddImageFile (from a temp file, with sha1)
    var filePath = path.join(TMP, 'image.zfs.gz');
    fs.writeFileSync(filePath, crypto.randomBytes(300 * 1024 + 17));
    var sha1 = sha1File(filePath);
    var size = fs.statSync(filePath).size;

    var err = await callFails('PUT /images/' + uuid + '/file (wrong sha1)',
        'addImageFile', [{uuid: uuid, file: filePath, compression: 'gzip',
            sha1: '0000000000000000000000000000000000000000'}]);
    assertErr(err, 400, 'Download', 'AddImageFile with a wrong sha1');
    ok('addImageFile with wrong sha1 -> 400 Download');

    r = await call('PUT /images/' + uuid + '/file', 'addImageFile',
        [{uuid: uuid, file: filePath, compression: 'gzip', sha1: sha1}]);
    assert.strictEqual(r.res.statusCode, 200);
    assert.strictEqual(r.data.files.length, 1, JSON.stringify(r.data.files));
    assert.strictEqual(r.data.files[0].sha1, sha1);
    assert.strictEqual(r.data.files[0].size, size);
    assert.strictEqual(r.data.files[0].compression, 'gzip');
    assert.strictEqual(r.data.state, 'unactivated');
    ok('addImageFile -> files[0] sha1=' + sha1 + ' size=' + size);

    // ActivateImage
    r = await call('POST /images/' + uuid + '?action=activate',
        'activateImage', [uuid]);
    assert.strictEqual(r.data.state, 'active');
    assert.strictEqual(r.data.disabled, false);
    assert.ok(typeof (r.data.published_at) === 'string' &&
        !isNaN(Date.parse(r.data.published_at)),
        'published_at: ' + r.data.published_at);
    var publishedAt = r.data.published_at;
    ok('activateImage -> state=active published_at=' + publishedAt);

    err = await callFails('POST /images/' + uuid + '?action=activate (again)',
        'activateImage', [uuid]);
    assertErr(err, 422, 'ImageAlreadyActivated', 'second ActivateImage');
    ok('activateImage again -> 422 ImageAlreadyActivated');

    err = await callFails('PUT /images/' + uuid + '/file (after activation)',
        'addImageFile', [{uuid: uuid, file: filePath, compression: 'gzip'}]);
    assertErr(err, 422, 'ImageFilesImmutable', 'AddImageFile after activate');
    ok('addImageFile after activation -> 422 ImageFilesImmutable');

    // GetImage
    r = await call('GET /images/' + uuid, 'getImage', [uuid]);
    img = r.data;
    assert.strictEqual(img.uuid, uuid);
    assert.strictEqual(img.state, 'active');
    assert.strictEqual(img.published_at, publishedAt);
    assert.strictEqual(img.files[0].sha1, sha1);
    assert.strictEqual(img.files[0].size, size);
    assert.strictEqual(img.description, manifest.description);
    assert.deepStrictEqual(img.tags, manifest.tags);
    ok('getImage -> active, files and tags round-trip');

    // ListImages with filters
    r = await call('GET /images?name=' + name, 'listImages', [{name: name}]);
    assert.strictEqual(listHas(r.data, uuid), 1,
        'name filter: ' + JSON.stringify(uuids(r.data)));
    assert.strictEqual(r.data.length, 1);
    ok('listImages {name} -> exactly our image');

    r = await call('GET /images?name=&state=active', 'listImages',
        [{name: name, state: 'active'}]);
    assert.strictEqual(listHas(r.data, uuid), 1);
    r = await call('GET /images?name=&state=unactivated', 'listImages',
        [{name: name, state: 'unactivated'}]);
    assert.strictEqual(listHas(r.data, uuid), 0,
        'state=unactivated must not list an active image');
    ok('listImages {name, state} -> active listed, unactivated not');

    r = await call('GET /images?tag.run=' + RUN, 'listImages',
        [{'tag.run': RUN}]);
    assert.deepStrictEqual(uuids(r.data), [uuid]);
    r = await call('GET /images?tag.role=interop&tag.run=nope', 'listImages',
        [{'tag.role': 'interop', 'tag.run': 'nope-' + RUN}]);
    assert.strictEqual(listHas(r.data, uuid), 0);
    ok('listImages {tag.run} -> our image; non-matching tag -> not listed');

    r = await call('GET /images?limit=1', 'listImages',
        [{name: name, limit: 1}]);
    assert.deepStrictEqual(uuids(r.data), [uuid]);
    ok('listImages {name, limit} (single-page path) -> our image');

    r = await call('GET /images (all pages)', 'listImages', []);
    assert.strictEqual(listHas(r.data, uuid), 1,
        'unfiltered listing (client pages with limit=1000&marker)');
    ok('listImages {} (client paging with limit/marker) -> ' +
        r.data.length + ' image(s)');

    // GetImageFile
    var outPath = path.join(TMP, 'download.zfs.gz');
    r = await call('GET /images/' + uuid + '/file', 'getImageFile',
        [uuid, outPath], 'res');
    assert.strictEqual(r.res.statusCode, 200);
    assert.strictEqual(sha1File(outPath), sha1);
    assert.strictEqual(fs.statSync(outPath).size, size);
    assert.strictEqual(r.res.headers.etag, sha1, 'file ETag is the sha1');
    ok('getImageFile -> sha1 matches, Content-MD5 verified by the client');

    // Icons
    var iconPath = path.join(TMP, 'icon.png');
    fs.writeFileSync(iconPath, PNG);
    r = await call('PUT /images/' + uuid + '/icon', 'addImageIcon',
        [{uuid: uuid, file: iconPath, contentType: 'image/png'}]);
    assert.strictEqual(r.data.icon, true, JSON.stringify(r.data));
    ok('addImageIcon -> icon=true');

    var iconOut = path.join(TMP, 'icon-out.png');
    r = await call('GET /images/' + uuid + '/icon', 'getImageIcon',
        [uuid, iconOut], 'res');
    assert.ok(fs.readFileSync(iconOut).equals(PNG), 'icon bytes round-trip');
    assert.strictEqual(r.res.headers['content-type'], 'image/png');
    ok('getImageIcon -> same bytes, content-type image/png, Content-MD5 ok');

    r = await call('DELETE /images/' + uuid + '/icon', 'deleteImageIcon',
        [uuid]);
    assert.strictEqual(r.res.statusCode, 200);
    assert.strictEqual(r.data.uuid, uuid);
    assert.ok(!('icon' in r.data), 'no icon key after delete: ' +
        JSON.stringify(r.data));
    ok('deleteImageIcon -> image without icon');

    err = await callFails('GET /images/' + uuid + '/icon (deleted)',
        'getImageIcon', [uuid, path.join(TMP, 'nope.png')], 'res');
    assertErr(err, 404, 'ResourceNotFound', 'GetImageIcon without icon');
    ok('getImageIcon after delete -> 404 ResourceNotFound');

    // UpdateImage
    r = await call('POST /images/' + uuid + '?action=update', 'updateImage',
        [uuid, {description: 'updated by interop ' + RUN}]);
    assert.strictEqual(r.data.description, 'updated by interop ' + RUN);
    r = await call('GET /images/' + uuid, 'getImage', [uuid]);
    assert.strictEqual(r.data.description, 'updated by interop ' + RUN);
    ok('updateImage {description} -> persisted');

    err = await callFails('POST /images/' + uuid + '?action=update {type}',
        'updateImage', [uuid, {type: 'zvol'}]);
    assertErr(err, 422, 'ValidationFailed', 'UpdateImage {type: zvol}');
    assert.ok(err.body.errors && err.body.errors.some(function (e) {
        return e.field === 'type' && e.code === 'NotAllowed';
    }), 'errors: ' + JSON.stringify(err.body.errors));
    ok('updateImage {type} -> 422 ValidationFailed type/NotAllowed');

    if (MODE === 'public') {
        err = await callFails('POST /images/' + uuid +
            '?action=update {public:false}', 'updateImage',
            [uuid, {public: false}]);
        assertErr(err, 422, 'ValidationFailed', 'UpdateImage {public:false}');
        ok('updateImage {public:false} on public server -> 422 ' +
            'ValidationFailed');
    }

    // Disable / enable
    r = await call('POST /images/' + uuid + '?action=disable', 'disableImage',
        [uuid]);
    assert.strictEqual(r.data.state, 'disabled');
    assert.strictEqual(r.data.disabled, true);
    r = await call('GET /images?name=', 'listImages', [{name: name}]);
    assert.strictEqual(listHas(r.data, uuid), 0,
        'default listing hides disabled images');
    // api.md 1.5 / 5.1: with authType none requests are never
    // authenticated, so outside dc mode ListImages is limited to active
    // images ("limitToActive"): state=disabled -> [], state=all -> active only.
    var expectListed = (MODE === 'dc' ? 1 : 0);
    r = await call('GET /images?name=&state=disabled', 'listImages',
        [{name: name, state: 'disabled'}]);
    assert.strictEqual(listHas(r.data, uuid), expectListed,
        'state=disabled in ' + MODE + ' mode: ' +
        JSON.stringify(uuids(r.data)));
    r = await call('GET /images?name=&state=all', 'listImages',
        [{name: name, state: 'all'}]);
    assert.strictEqual(listHas(r.data, uuid), expectListed,
        'state=all in ' + MODE + ' mode: ' + JSON.stringify(uuids(r.data)));
    r = await call('GET /images/' + uuid, 'getImage', [uuid]);
    assert.strictEqual(r.data.state, 'disabled');
    ok('disableImage -> disabled; hidden by default, ' +
        (expectListed ? 'listed with state=disabled/all'
            : 'not listed with state=disabled/all (unauthenticated, ' +
            'limitToActive)') + ', still gettable');

    r = await call('POST /images/' + uuid + '?action=enable', 'enableImage',
        [uuid]);
    assert.strictEqual(r.data.state, 'active');
    assert.strictEqual(r.data.disabled, false);
    r = await call('GET /images?name=', 'listImages', [{name: name}]);
    assert.strictEqual(listHas(r.data, uuid), 1);
    ok('enableImage -> active and listed again');

    // ACL (operator)
    r = await call('POST /images/' + uuid + '/acl?action=add', 'addImageAcl',
        [uuid, [BOB, CAROL]]);
    assert.deepStrictEqual(r.data.acl, [BOB, CAROL]);
    r = await call('POST /images/' + uuid + '/acl?action=add (dup)',
        'addImageAcl', [uuid, [BOB]]);
    assert.deepStrictEqual(r.data.acl, [BOB, CAROL], 'no duplicates');
    r = await call('POST /images/' + uuid + '/acl?action=remove',
        'removeImageAcl', [uuid, [BOB]]);
    assert.deepStrictEqual(r.data.acl, [CAROL]);
    r = await call('POST /images/' + uuid + '/acl?action=remove (last)',
        'removeImageAcl', [uuid, [CAROL]]);
    assert.ok(!('acl' in r.data), 'empty acl omitted: ' +
        JSON.stringify(r.data.acl));
    ok('addImageAcl/removeImageAcl (operator) -> acl updated, empty ' +
        'acl omitted');

    // DeleteImage
    r = await call('DELETE /images/' + uuid, 'deleteImage', [uuid], 'res');
    assert.strictEqual(r.res.statusCode, 204);
    err = await callFails('GET /images/' + uuid + ' (deleted)', 'getImage',
        [uuid]);
    assertErr(err, 404, 'ResourceNotFound', 'GetImage after delete');
    ok('deleteImage -> 204, then getImage -> 404');
}

async function errorPaths() {
    var random = crypto.randomUUID();
    var err = await callFails('GET /images/' + random, 'getImage', [random]);
    assertErr(err, 404, 'ResourceNotFound', 'GetImage of a random uuid');
    ok('getImage(random uuid) -> 404 ResourceNotFound: ' + err.message);

    err = await callFails('DELETE /images/' + random, 'deleteImage',
        [random], 'res');
    assertErr(err, 404, 'ResourceNotFound', 'DeleteImage of a random uuid');
    ok('deleteImage(random uuid) -> 404 ResourceNotFound');

    err = await callFails('GET /images/' + random + '/file', 'getImageFile',
        [random, path.join(TMP, 'nope')], 'res');
    assertErr(err, 404, 'ResourceNotFound', 'GetImageFile of a random uuid');
    ok('getImageFile(random uuid) -> 404 ResourceNotFound (raw client)');

    err = await callFails('GET /channels', 'listChannels', [{}]);
    assertErr(err, 404, 'ResourceNotFound',
        'ListChannels on a server without channels');
    ok('listChannels on a server without channels -> 404 ResourceNotFound');

    if (MODE === 'public') {
        err = await callFails('POST /images (no public)', 'createImage', [{
            name: 'interop-private-' + RUN, version: '1.0.0',
            type: 'zone-dataset', os: 'smartos', owner: crypto.randomUUID()
        }]);
        assertErr(err, 422, 'ValidationFailed',
            'CreateImage without public on a public server');
        assert.ok(err.body.errors && err.body.errors.some(function (e) {
            return e.field === 'public' && e.code === 'Invalid';
        }), 'errors: ' + JSON.stringify(err.body.errors));
        ok('createImage without public on public server -> 422 ' +
            'ValidationFailed public/Invalid');
    }
}

/* UC3: customer image visibility via owner / ACL (dc mode, account param). */
async function accountVisibility() {
    var name = 'interop-alice-' + RUN;
    var base = {name: name, version: '1.0.0', type: 'zone-dataset',
        os: 'smartos'};

    var err = await callFails('POST /images?account=ALICE (owner=BOB)',
        'createImage', [Object.assign({owner: BOB}, base), ALICE]);
    assertErr(err, 422, 'InvalidParameter',
        'CreateImage with owner != account');
    ok('createImage as ALICE with owner BOB -> 422 InvalidParameter');

    var r = await call('POST /images?account=ALICE', 'createImage',
        [base, ALICE]);
    var uuid = r.data.uuid;
    assert.strictEqual(r.data.owner, ALICE);
    assert.strictEqual(r.data.public, false);
    assert.strictEqual(r.data.state, 'unactivated');
    ok('createImage as ALICE -> owner=ALICE public=false ' + uuid);

    var filePath = path.join(TMP, 'alice.zfs.gz');
    fs.writeFileSync(filePath, crypto.randomBytes(64 * 1024));
    var sha1 = sha1File(filePath);
    r = await call('PUT /images/' + uuid + '/file?account=ALICE',
        'addImageFile', [{uuid: uuid, file: filePath, compression: 'gzip'},
            ALICE]);
    assert.strictEqual(r.data.files[0].sha1, sha1);
    r = await call('POST /images/' + uuid + '?action=activate&account=ALICE',
        'activateImage', [uuid, ALICE]);
    assert.strictEqual(r.data.state, 'active');
    ok('addImageFile + activateImage as ALICE -> active');

    r = await call('GET /images/' + uuid + '?account=ALICE', 'getImage',
        [uuid, ALICE]);
    assert.strictEqual(r.data.uuid, uuid);
    ok('getImage as owner ALICE -> visible');

    async function invisibleTo(who, whoName) {
        var e = await callFails('GET /images/' + uuid + '?account=' + whoName,
            'getImage', [uuid, who]);
        assertErr(e, 404, 'ResourceNotFound', 'GetImage as ' + whoName);
        var lr = await call('GET /images?account=' + whoName + '&name=',
            'listImages', [{account: who, name: name}]);
        assert.strictEqual(listHas(lr.data, uuid), 0,
            whoName + ' must not list it');
        lr = await call('GET /images?account=' + whoName + '&state=all',
            'listImages', [{account: who, state: 'all'}]);
        assert.strictEqual(listHas(lr.data, uuid), 0,
            whoName + ' must not list it with state=all');
        e = await callFails('GET /images/' + uuid + '/file?account=' +
            whoName, 'getImageFile', [uuid, path.join(TMP, 'x'), who], 'res');
        assertErr(e, 404, 'ResourceNotFound', 'GetImageFile as ' + whoName);
    }

    await invisibleTo(BOB, 'BOB');
    ok('before sharing: BOB gets 404 (image, file) and does not list it');

    r = await call('POST /images/' + uuid + '/acl?account=ALICE',
        'addImageAcl', [uuid, [BOB], ALICE]);
    assert.deepStrictEqual(r.data.acl, [BOB]);
    ok('addImageAcl [BOB] as ALICE -> acl=[BOB]');

    r = await call('GET /images/' + uuid + '?account=BOB', 'getImage',
        [uuid, BOB]);
    assert.strictEqual(r.data.uuid, uuid);
    r = await call('GET /images?account=BOB&name=', 'listImages',
        [{account: BOB, name: name}]);
    assert.strictEqual(listHas(r.data, uuid), 1);
    r = await call('GET /images?account=BOB', 'listImages', [{account: BOB}]);
    assert.strictEqual(listHas(r.data, uuid), 1);
    r = await call('GET /images?account=BOB&public=false', 'listImages',
        [{account: BOB, public: false}]);
    assert.strictEqual(listHas(r.data, uuid), 1,
        'public=false lists private images shared with BOB');
    r = await call('GET /images?account=BOB&owner=ALICE', 'listImages',
        [{account: BOB, owner: ALICE}]);
    assert.strictEqual(listHas(r.data, uuid), 1);
    r = await call('GET /images?account=BOB&state=unactivated', 'listImages',
        [{account: BOB, state: 'unactivated'}]);
    assert.strictEqual(listHas(r.data, uuid), 0,
        'state=unactivated: only own images');
    var dl = path.join(TMP, 'bob.zfs.gz');
    await call('GET /images/' + uuid + '/file?account=BOB', 'getImageFile',
        [uuid, dl, BOB], 'res');
    assert.strictEqual(sha1File(dl), sha1);
    ok('after sharing: BOB gets, lists (name/default/public=false/owner) ' +
        'and downloads it');

    err = await callFails('POST /images/' + uuid +
        '?action=update&account=BOB', 'updateImage',
        [uuid, {description: 'mine now'}, BOB]);
    assertErr(err, 422, 'NotImageOwner', 'UpdateImage as BOB');
    ok('updateImage as BOB -> 422 NotImageOwner');

    err = await callFails('DELETE /images/' + uuid + '?account=BOB',
        'deleteImage', [uuid, BOB], 'res');
    assertErr(err, 422, 'NotImageOwner', 'DeleteImage as BOB');
    ok('deleteImage as BOB -> 422 NotImageOwner');

    await invisibleTo(CAROL, 'CAROL');
    ok('CAROL (not on the ACL) still gets 404 and does not list it');

    // UC3.8 clone (while shared)
    r = await call('POST /images/' + uuid + '/clone?account=BOB',
        'cloneImage', [uuid, BOB]);
    var clone = r.data;
    assert.notStrictEqual(clone.uuid, uuid);
    assert.strictEqual(clone.owner, BOB);
    assert.strictEqual(clone.state, 'active');
    assert.strictEqual(clone.public, false);
    assert.ok(!('acl' in clone), 'clone has no acl');
    ok('cloneImage as BOB -> new image ' + clone.uuid + ' owned by BOB');

    err = await callFails('POST /images/' + uuid + '/clone?account=ALICE',
        'cloneImage', [uuid, ALICE]);
    assertErr(err, 422, 'ImageNotShared', 'CloneImage as owner ALICE');
    ok('cloneImage as ALICE (owner) -> 422 ImageNotShared');

    r = await call('DELETE /images/' + clone.uuid + '?account=BOB',
        'deleteImage', [clone.uuid, BOB], 'res');
    assert.strictEqual(r.res.statusCode, 204);
    ok('deleteImage of the clone as BOB -> 204');

    // UC3.7 unshare
    r = await call('POST /images/' + uuid + '/acl?action=remove&account=ALICE',
        'removeImageAcl', [uuid, [BOB], ALICE]);
    assert.ok(!('acl' in r.data), 'acl key gone: ' + JSON.stringify(r.data));
    await invisibleTo(BOB, 'BOB');
    ok('removeImageAcl [BOB] as ALICE -> no acl; BOB gets 404 again');

    r = await call('DELETE /images/' + uuid + '?account=ALICE',
        'deleteImage', [uuid, ALICE], 'res');
    assert.strictEqual(r.res.statusCode, 204);
    err = await callFails('GET /images/' + uuid, 'getImage', [uuid]);
    assertErr(err, 404, 'ResourceNotFound', 'GetImage after delete');
    ok('deleteImage as ALICE -> 204; gone');
}

/* UC8: channel promotion on a private, channel-enabled server. */
async function channelsFlow() {
    var CHANNELS = [
        {name: 'dev', description: 'all development builds', default: true},
        {name: 'staging', description: 'builds for testing in staging'},
        {name: 'release', description: 'release gold bits'}
    ];
    function chClient(ch) {
        return imgapi.createClient({url: URL, version: '~2', channel: ch});
    }
    var devC = chClient('dev');
    var stagingC = chClient('staging');
    // The channel may also be given as a query param on the URL.
    var releaseC = imgapi.createClient({url: URL + '?channel=release',
        version: '~2'});
    try {
        await channelsFlowWith(CHANNELS, devC, stagingC, releaseC);
    } finally {
        devC.close();
        stagingC.close();
        releaseC.close();
    }
}

async function channelsFlowWith(CHANNELS, devC, stagingC, releaseC) {
    var r = await call('GET /channels', 'listChannels', [{}]);
    assert.deepStrictEqual(r.data, CHANNELS);
    ok('listChannels -> ' + JSON.stringify(r.data.map(function (c) {
        return c.name; })) + ' (dev default)');

    var name = 'interop-vmapi-' + RUN;
    var owner = crypto.randomUUID();
    var manifest = {name: name, version: 'master-20200701T000000Z-g1234567',
        type: 'zone-dataset', os: 'smartos', owner: owner, public: false};

    var err = await callFails('POST /images (public:true on private server)',
        'createImage', [Object.assign({}, manifest, {public: true})]);
    assertErr(err, 422, 'ValidationFailed',
        'CreateImage with public:true on a private server');
    assert.ok(err.body.errors && err.body.errors.some(function (e) {
        return e.field === 'public';
    }), 'errors: ' + JSON.stringify(err.body.errors));
    ok('createImage public:true on private server -> 422 ValidationFailed ' +
        'public');

    err = await callFails('POST /images?channel=bogus', 'createImage',
        [manifest, {channel: 'bogus'}]);
    assertErr(err, 422, 'ValidationFailed', 'CreateImage ?channel=bogus');
    ok('createImage ?channel=bogus -> 422 ValidationFailed');

    r = await call('POST /images (default channel)', 'createImage',
        [manifest]);
    var uuid = r.data.uuid;
    assert.deepStrictEqual(r.data.channels, ['dev'],
        'Accept-Version ~2 shows channels: ' + JSON.stringify(r.data));
    assert.strictEqual(r.data.public, false);
    ok('createImage without channel -> channels ["dev"] ' + uuid);

    var filePath = path.join(TMP, 'vmapi.zfs.gz');
    fs.writeFileSync(filePath, crypto.randomBytes(100 * 1024 + 3));
    var sha1 = sha1File(filePath);
    r = await call('PUT /images/' + uuid + '/file', 'addImageFile',
        [{uuid: uuid, file: filePath, compression: 'gzip', sha1: sha1}]);
    assert.strictEqual(r.data.files[0].sha1, sha1);
    r = await call('POST /images/' + uuid + '?action=activate',
        'activateImage', [uuid]);
    assert.strictEqual(r.data.state, 'active');
    ok('addImageFile + activateImage in the default channel -> active');

    err = await callFails('GET /images/' + uuid + '?channel=release',
        'getImage', [uuid], undefined, releaseC);
    assertErr(err, 404, 'ResourceNotFound', 'GetImage via channel release');
    ok('getImage via a channel it is not in (release) -> 404');

    r = await call('POST /images/' + uuid +
        '?action=channel-add&channel=dev {staging}', 'channelAddImage',
        [{uuid: uuid, channel: 'staging'}], undefined, devC);
    assert.deepStrictEqual(r.data.channels, ['dev', 'staging']);
    ok('channelAddImage dev -> staging: channels ["dev","staging"]');

    err = await callFails('POST /images/' + uuid +
        '?action=channel-add&channel=dev {bogus}', 'channelAddImage',
        [{uuid: uuid, channel: 'bogus'}], undefined, devC);
    assertErr(err, 422, 'ValidationFailed', 'ChannelAddImage {bogus}');
    ok('channelAddImage {channel: bogus} -> 422 ValidationFailed');

    r = await call('POST /images/' + uuid +
        '?action=channel-add&channel=staging {release}', 'channelAddImage',
        [{uuid: uuid, channel: 'release'}], undefined, stagingC);
    assert.deepStrictEqual(r.data.channels, ['dev', 'staging', 'release']);
    ok('channelAddImage staging -> release: channels ' +
        JSON.stringify(r.data.channels));

    r = await call('GET /images?name=&channel=release', 'listImages',
        [{name: name}], undefined, releaseC);
    assert.deepStrictEqual(uuids(r.data), [uuid]);
    r = await call('GET /images?name=&channel=*', 'listImages',
        [{name: name}, {channel: '*'}]);
    assert.deepStrictEqual(uuids(r.data), [uuid]);
    err = await callFails('GET /images?channel=bogus', 'listImages',
        [{}, {channel: 'bogus'}]);
    assertErr(err, 422, 'ValidationFailed', 'ListImages ?channel=bogus');
    assert.ok(err.body.errors && err.body.errors.some(function (e) {
        return e.field === 'channel' && e.code === 'Invalid';
    }), 'errors: ' + JSON.stringify(err.body.errors));
    ok('listImages channel=release / channel=* list it; channel=bogus -> ' +
        '422 ValidationFailed channel/Invalid');

    var dl = path.join(TMP, 'vmapi-release.zfs.gz');
    await call('GET /images/' + uuid + '/file?channel=release',
        'getImageFile', [uuid, dl], 'res', releaseC);
    assert.strictEqual(sha1File(dl), sha1);
    ok('getImageFile via channel release -> sha1 matches');

    r = await call('DELETE /images/' + uuid + '?channel=dev', 'deleteImage',
        [uuid], 'res', devC);
    assert.strictEqual(r.res.statusCode, 204);
    err = await callFails('GET /images/' + uuid + '?channel=dev', 'getImage',
        [uuid], undefined, devC);
    assertErr(err, 404, 'ResourceNotFound', 'GetImage via dev after retire');
    r = await call('GET /images/' + uuid + '?channel=staging', 'getImage',
        [uuid], undefined, stagingC);
    assert.deepStrictEqual(r.data.channels, ['staging', 'release']);
    ok('deleteImage ?channel=dev -> 204, retired from dev only; channels ' +
        JSON.stringify(r.data.channels));

    r = await call('DELETE /images/' + uuid +
        '?channel=staging&force_all_channels=true', 'deleteImage',
        [uuid, {forceAllChannels: true}], 'res', stagingC);
    assert.strictEqual(r.res.statusCode, 204);
    err = await callFails('GET /images/' + uuid + '?channel=*', 'getImage',
        [uuid, {channel: '*'}]);
    assertErr(err, 404, 'ResourceNotFound', 'GetImage after full delete');
    ok('deleteImage ?channel=staging&force_all_channels=true -> 204; gone ' +
        'from every channel');
}

/*
 * AdminImportRemoteImage through the original client: the server names
 * itself in `workflow-api` and answers GET /jobs/:uuid, which
 * adminImportRemoteImageAndWait polls. The source is this very server (run.sh
 * allows http and loopback in [remote]), so the image is already here: a
 * job that has already succeeded (the original would answer 409).
 */
async function remoteImport() {
    var r = await call('POST /images', 'createImage', [{
        name: 'interop-remote-' + RUN, version: '1.0.0', type: 'zone-dataset',
        os: 'smartos', owner: crypto.randomUUID(), public: true}]);
    var uuid = r.data.uuid;
    var filePath = path.join(TMP, 'remote.zfs.gz');
    fs.writeFileSync(filePath, crypto.randomBytes(4096));
    await call('PUT /images/' + uuid + '/file', 'addImageFile',
        [{uuid: uuid, file: filePath, compression: 'gzip'}]);
    await call('POST /images/' + uuid + '?action=activate', 'activateImage',
        [uuid]);

    r = await call('POST /images/' + uuid + '?action=import-remote',
        'adminImportRemoteImage', [uuid, URL, {}]);
    assert.strictEqual(r.data.image_uuid, uuid, JSON.stringify(r.data));
    assert.ok(UUID_RE.test(r.data.job_uuid), JSON.stringify(r.data));
    assert.strictEqual(r.res.headers['workflow-api'], URL);
    ok('adminImportRemoteImage (already here) -> job ' + r.data.job_uuid +
        ', workflow-api: ' + r.res.headers['workflow-api']);

    r = await call('import-remote and wait', 'adminImportRemoteImageAndWait',
        [uuid, URL, {}]);
    assert.strictEqual(r.data.uuid, uuid);
    assert.strictEqual(r.data.state, 'active');
    ok('adminImportRemoteImageAndWait -> polled GET /jobs/:uuid, image active');

    var missing = crypto.randomUUID();
    var err = await callFails('import-remote of an unknown image',
        'adminImportRemoteImage', [missing, URL, {}]);
    assertErr(err, 503, 'RemoteSourceError', 'import-remote of an unknown image');
    ok('adminImportRemoteImage(unknown uuid) -> 503 RemoteSourceError');

    err = await callFails('import with source (exists)', 'adminImportImage',
        [{uuid: uuid}, {source: URL}]);
    assertErr(err, 409, 'ImageUuidAlreadyExists', 'AdminImportImageFromSource');
    err = await callFails('import with source (unknown)', 'adminImportImage',
        [{uuid: missing}, {source: URL}]);
    assertErr(err, 503, 'RemoteSourceError', 'AdminImportImageFromSource');
    ok('adminImportImage({source}) -> 409 ImageUuidAlreadyExists / 503 RemoteSourceError');
}

/*
 * AdminImportDockerImage / AdminPushDockerImage as sdc-docker calls them:
 * the image pushed by run.sh to the registry IMGAPI_INTEROP_REGISTRY is
 * imported, its layers checked (RFD 57 uuids computed here), then pushed
 * back to another repository with the `create-docker-image` message as the
 * body (what sdc-docker stores), and read back from the registry.
 */
function readStream(res) {
    return new Promise(function (resolve, reject) {
        var text = '';
        res.on('data', function (chunk) { text += chunk; });
        res.on('end', function () { resolve(text); });
        res.on('error', reject);
    });
}

function streamMessages(text) {
    assert.ok(text.endsWith('\r\n'), 'every message ends with \\r\\n');
    return text.split('\r\n').filter(Boolean).map(function (line) {
        return JSON.parse(line);
    });
}

function rfd57(digests) {
    var hex = crypto.createHash('sha256').update(digests.join(' ')).digest('hex');
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16),
        hex.slice(16, 20), hex.slice(20, 32)].join('-');
}

function registryManifest(registry, name, ref) {
    return new Promise(function (resolve, reject) {
        require('http').get({
            host: registry.split(':')[0], port: registry.split(':')[1],
            path: '/v2/' + name + '/manifests/' + ref,
            headers: {accept: 'application/vnd.oci.image.manifest.v1+json, ' +
                'application/vnd.docker.distribution.manifest.v2+json'}
        }, function (res) {
            readStream(res).then(function (body) {
                resolve({status: res.statusCode, headers: res.headers, body: body});
            }, reject);
        }).on('error', reject);
    });
}

async function dockerFlow() {
    var registry = process.env.IMGAPI_INTEROP_REGISTRY;
    assert.ok(registry, 'IMGAPI_INTEROP_REGISTRY is set');
    var repo = registry + '/interop/fixture';

    var err = await callFails('adminImportDockerImage tag+digest',
        'adminImportDockerImage', [{repo: repo, tag: 'v1',
        digest: 'sha256:' + '0'.repeat(64)}], 'res');
    assert.strictEqual(err.statusCode, 422);
    assert.strictEqual(codeOf(err), 'ValidationFailed');
    ok('adminImportDockerImage with tag and digest: 422 ValidationFailed');

    var r = await call('adminImportDockerImage', 'adminImportDockerImage',
        [{repo: repo, tag: 'v1', public: true}], 'res');
    assert.strictEqual(r.res.statusCode, 200);
    var msgs = streamMessages(await readStream(r.res));
    msgs.forEach(function (m) {
        assert.strictEqual(m.id, repo, 'every message names the repository');
        assert.notStrictEqual(m.type, 'error', JSON.stringify(m));
    });
    var created = msgs.filter(function (m) {
        return m.type === 'create-docker-image';
    });
    assert.strictEqual(created.length, 1);
    created = created[0];
    assert.strictEqual(created.head, true);
    assert.strictEqual(created.dockerImageVersion, '2.2');
    var manifest = JSON.parse(created.manifest_str);
    var digests = manifest.layers.map(function (l) { return l.digest; });
    assert.strictEqual(created.manifest_digest, 'sha256:' + crypto
        .createHash('sha256').update(created.manifest_str).digest('hex'));
    assert.strictEqual(created.image_uuid, rfd57(digests));
    assert.strictEqual(msgs[msgs.length - 1].payload.status,
        'Status: Downloaded newer image for ' + repo + ':v1');
    ok('adminImportDockerImage: stream of ' + msgs.length +
        ' messages, create-docker-image names the RFD 57 head uuid');

    for (var i = 0; i < digests.length; i++) {
        var got = await call('getImage layer ' + i, 'getImage',
            [rfd57(digests.slice(0, i + 1))]);
        var img = got.data;
        assert.strictEqual(img.type, 'docker');
        assert.strictEqual(img.name, 'docker-layer');
        assert.strictEqual(img.state, 'active');
        assert.strictEqual(img.owner, ADMIN, 'dc mode: owned by the admin');
        assert.strictEqual(img.version, digests[i].slice(7, 19));
        assert.strictEqual(img.tags['docker:id'], digests[i]);
        assert.strictEqual(img.tags['docker:repo'], repo);
        assert.strictEqual(img.origin,
            i === 0 ? undefined : rfd57(digests.slice(0, i)));
        assert.strictEqual(img.files[0].size, manifest.layers[i].size);
    }
    ok('getImage: ' + digests.length + ' active docker-layer images, ' +
        'origin chain by RFD 57');

    r = await call('adminImportDockerImage again', 'adminImportDockerImage',
        [{repo: repo, tag: 'v1'}], 'res');
    msgs = streamMessages(await readStream(r.res));
    var exists = msgs.filter(function (m) {
        return m.payload && m.payload.status === 'Already exists';
    });
    assert.strictEqual(exists.length, digests.length);
    ok('adminImportDockerImage again: every layer "Already exists"');

    var target = registry + '/interop/pushed:v2';
    r = await call('adminPushDockerImage', 'adminPushDockerImage', [{
        image: {
            image_uuid: created.image_uuid,
            manifest_str: created.manifest_str,
            config_digest: created.config_digest,
            image: created.image
        },
        repoAndTag: target
    }], 'res');
    assert.strictEqual(r.res.statusCode, 200);
    msgs = streamMessages(await readStream(r.res));
    msgs.forEach(function (m) {
        assert.notStrictEqual(m.type, 'error', JSON.stringify(m));
    });
    var aux = msgs[msgs.length - 1].payload.aux;
    assert.strictEqual(aux.Tag, 'v2');
    assert.strictEqual(aux.Digest, created.manifest_digest);
    var back = await registryManifest(registry, 'interop/pushed', 'v2');
    assert.strictEqual(back.status, 200);
    assert.strictEqual(back.body, created.manifest_str);
    ok('adminPushDockerImage: the registry serves the same manifest ' +
        '(digest ' + aux.Digest.slice(0, 19) + '…)');
}

// ---- every default answer passes npm imgmanifest

/* One HTTP request; resolves with {status, headers, text} (no client logic). */
function http(method, urlPath, body, headers) {
    return new Promise(function (resolve, reject) {
        var u = new (require('url').URL)(URL + urlPath);
        var data = null;
        var hdrs = Object.assign({}, headers || {});
        if (body !== undefined && body !== null) {
            data = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
            if (!hdrs['content-type']) {
                hdrs['content-type'] = 'application/json';
            }
            hdrs['content-length'] = data.length;
        }
        var r = require('http').request({
            method: method, hostname: u.hostname, port: u.port,
            path: u.pathname + u.search, headers: hdrs
        }, function (res) {
            var chunks = [];
            res.on('data', function (c) { chunks.push(c); });
            res.on('end', function () {
                resolve({status: res.statusCode, headers: res.headers,
                    text: Buffer.concat(chunks).toString('utf8')});
            });
        });
        r.on('error', reject);
        if (data) {
            r.write(data);
        }
        r.end();
    });
}

async function httpOk(label, method, urlPath, body, headers) {
    current = label;
    var r = await http(method, urlPath, body, headers);
    assert.ok(r.status >= 200 && r.status < 300,
        label + ': HTTP ' + r.status + ' ' + r.text);
    return r;
}

/*
 * The validator SmartOS `imgadm` runs on a manifest before installing it
 * (`validateMinimalManifest`: required fields, each field's rule, and no
 * field it does not know), and the validator of the server's own mode (dc for the docker run) (what
 * the original IMGAPI checks its stored records with). The one error allowed
 * from the latter is `activated` missing: the original's API object never
 * carries `activated` (it is folded into `state`), so every manifest the
 * original serves lacks it too.
 */
function validateServed(m, what) {
    var minimal = imgmanifest.validateMinimalManifest(m);
    assert.strictEqual(minimal, null, what + ': validateMinimalManifest: ' +
        JSON.stringify(minimal) + ' manifest: ' + JSON.stringify(m));
    var byMode = {
        public: imgmanifest.validatePublicManifest,
        dc: imgmanifest.validateDcManifest,
        channels: imgmanifest.validatePrivateManifest,
        docker: imgmanifest.validateDcManifest
    }[MODE];
    var errs = (byMode(m) || []).filter(function (e) {
        return !(e.field === 'activated' && e.code === 'MissingParameter');
    });
    assert.deepStrictEqual(errs, [], what + ': validate ' + MODE +
        ' manifest: ' + JSON.stringify(errs) + ' manifest: ' +
        JSON.stringify(m));
}

/* Images covering every manifest field a publisher can set. */
async function publishVariety(owner) {
    var tag = 'mv-' + RUN;
    var common = {owner: owner, public: MODE !== 'channels', tags: {suite: tag}};
    function withCommon(m) {
        return Object.assign({}, common, m);
    }
    var specs = [
        withCommon({name: tag + '-base', version: '1.0.0', type: 'zone-dataset',
            os: 'smartos', description: 'every optional field',
            homepage: 'https://example.com/base', eula: 'https://example.com/eula',
            requirements: {min_platform: {'7.0': '20180830T001556Z'},
                networks: [{name: 'net0', description: 'public'}],
                brand: 'joyent', ssh_key: true},
            users: [{name: 'root'}, {name: 'admin'}], generate_passwords: true,
            inherited_directories: ['/opt'], billing_tags: ['small', 'base'],
            traits: {ssd: true, group: 'g1'},
            tags: {suite: tag, role: 'base', 'smartdc_service': true}}),
        withCommon({name: tag + '-vm', version: '2.0', type: 'zvol', os: 'linux',
            nic_driver: 'virtio', disk_driver: 'virtio', cpu_type: 'host',
            image_size: 10240}),
        withCommon({name: tag + '-other', version: '3', type: 'other',
            os: 'other', public: MODE === 'public'}),
        withCommon({name: tag + '-lx', version: '4', type: 'lx-dataset',
            os: 'linux', requirements: {brand: 'lx'}})
    ];
    var made = [];
    var previous = null;
    for (var i = 0; i < specs.length; i++) {
        var spec = specs[i];
        if (spec.type === 'lx-dataset' && previous) {
            spec.origin = previous;
        }
        var created = JSON.parse((await httpOk('create ' + spec.name, 'POST',
            '/images', spec)).text);
        var file = crypto.randomBytes(4096 + i);
        await httpOk('file ' + spec.name, 'PUT', '/images/' + created.uuid +
            '/file?compression=none', file,
            {'content-type': 'application/octet-stream'});
        if (i === 0) {
            await httpOk('icon ' + spec.name, 'PUT', '/images/' + created.uuid +
                '/icon', PNG, {'content-type': 'image/png'});
        }
        await httpOk('activate ' + spec.name, 'POST', '/images/' +
            created.uuid + '?action=activate');
        if (spec.type === 'zone-dataset') {
            previous = created.uuid;
        }
        made.push(created.uuid);
    }
    // With an ACL, disabled, and one never activated.
    await httpOk('acl', 'POST', '/images/' + made[2] + '/acl?action=add', [BOB]);
    await httpOk('disable', 'POST', '/images/' + made[1] + '?action=disable');
    var draft = JSON.parse((await httpOk('create draft', 'POST', '/images',
        withCommon({name: tag + '-draft', version: '0', type: 'zone-dataset',
            os: 'smartos'}))).text);
    made.push(draft.uuid);
    return made;
}

/*
 * Every image and list answer the server gives by default, as text: the
 * lists (as operator, as an account, every state) and GetImage of every
 * image on the server, whichever flow made it.
 */
async function servedAnswers(made) {
    var answers = {};
    var lists = ['/images', '/images?state=all', '/images?account=' + BOB,
        '/images?state=all&account=' + ALICE];
    if (MODE === 'channels') {
        lists.push('/images?channel=*&state=all');
    }
    for (var j = 0; j < lists.length; j++) {
        answers['GET ' + lists[j]] = (await httpOk('list', 'GET', lists[j])).text;
    }
    var all = JSON.parse(answers['GET ' + lists[MODE === 'channels' ? 4 : 1]]);
    var gets = all.map(function (m) {
        return '/images/' + m.uuid +
            (m.channels ? '?channel=' + m.channels[0] : '');
    });
    // Not listed (disabled, unactivated, or outside the default channel).
    made.forEach(function (uuid) {
        if (!listHas(all, uuid)) {
            gets.push('/images/' + uuid +
                (MODE === 'channels' ? '?channel=*' : ''));
        }
    });
    for (var i = 0; i < gets.length; i++) {
        answers['GET ' + gets[i]] = (await httpOk('get', 'GET', gets[i])).text;
    }
    return answers;
}

async function manifestValidation() {
    var made = (MODE === 'docker' ? [] :
        await publishVariety(MODE === 'dc' ? ADMIN : ALICE));
    var answers = await servedAnswers(made);
    var checked = 0;
    Object.keys(answers).forEach(function (what) {
        var body = JSON.parse(answers[what]);
        (Array.isArray(body) ? body : [body]).forEach(function (m) {
            validateServed(m, what);
            checked++;
        });
    });
    ok('npm imgmanifest ' + require('imgmanifest/package.json').version +
        ' accepts all ' + checked + ' manifests in ' +
        Object.keys(answers).length + ' default answers');
    if (made.length) {
        await lifecycleLeavesAnswersAlone(made, answers);
    }
}

/*
 * Lifecycle data (docs/lifecycle.md) lives beside the manifest: with every
 * image protected and given a deprecation time to come, every default
 * answer is byte-identical to the one before.
 */
async function lifecycleLeavesAnswersAlone(made, before) {
    var later = '2999-01-01T00:00:00.000Z';
    var i;
    for (i = 0; i < made.length; i++) {
        // Made in the default channel (channels mode): no `channel` needed.
        var set = await httpOk('lifecycle', 'PUT', '/images/' + made[i] +
            '/lifecycle', {protected: true, deprecated_at: later});
        var flags = JSON.parse(set.text);
        assert.strictEqual(flags.protected, true, set.text);
        assert.strictEqual(flags.deprecated_at, later, set.text);
    }
    var after = await servedAnswers(made);
    assert.deepStrictEqual(Object.keys(after), Object.keys(before));
    Object.keys(before).forEach(function (what) {
        assert.strictEqual(after[what], before[what],
            what + ': the answer changed with lifecycle flags set');
    });
    for (i = 0; i < made.length; i++) {
        await httpOk('lifecycle', 'PUT', '/images/' + made[i] + '/lifecycle',
            {protected: false, deprecated_at: null});
    }
    ok('lifecycle flags (protected, deprecation to come) on ' + made.length +
        ' images: all ' + Object.keys(before).length +
        ' default answers byte-identical');
}

async function main() {
    if (MODE === 'docker') {
        await dockerFlow();
        await manifestValidation();
        return;
    }
    console.log('# sdc-clients %s IMGAPI client against %s (mode %s)',
        require('sdc-clients/package.json').version, URL, MODE);
    await pingChecks();
    if (MODE === 'channels') {
        await channelsFlow();
        await manifestValidation();
        return;
    }
    await operatorLifecycle();
    await errorPaths();
    if (MODE === 'public') {
        await remoteImport();
    }
    if (MODE === 'dc') {
        await accountVisibility();
    }
    await manifestValidation();
}

main().then(function () {
    client.close();
    fs.rmSync(TMP, {recursive: true, force: true});
    console.log('# PASS [%s]: %d checks passed', MODE, passed);
}, function (err) {
    client.close();
    fs.rmSync(TMP, {recursive: true, force: true});
    console.error('not ok %d - [%s] FAILED during: %s', passed + 1, MODE,
        err.imgapiCall || current);
    console.error('  error: %s', err.message);
    if (err.statusCode !== undefined || err.body !== undefined) {
        console.error('  HTTP status: %s restCode: %s', err.statusCode,
            codeOf(err));
        console.error('  body: %s', JSON.stringify(err.body));
    }
    var res = err.imgapiRes;
    if (res && res.headers) {
        console.error('  response headers: %s', JSON.stringify(res.headers));
    }
    if (!(err instanceof assert.AssertionError)) {
        console.error(err.stack);
    } else if (err.actual !== undefined || err.expected !== undefined) {
        console.error('  actual:   %j', err.actual);
        console.error('  expected: %j', err.expected);
    }
    console.error('# FAIL [%s]: %d checks passed before the failure',
        MODE, passed);
    process.exit(1);
});
