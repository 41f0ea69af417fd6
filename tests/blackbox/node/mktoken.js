// Builds Agora RTM tokens with Agora's own public builders, for the
// black-box tests: 006 with npm agora-access-token, 007 with npm agora-token.
// Input (argv[2]): a JSON array of {"v":"006"|"007","appid","cert","uid",
//   "expire" (006: seconds from now for privilege 1000, negative = expired;
//             007: the token's relative expire),
//   "issue_ts" (007 only, optional: unix seconds; default now),
//   "privilege_ts" (006 only, optional: privilege 1000's absolute value, 0 = none),
//   "ts" (006 only, optional: the token's own expiry; default the builder's now + 24 h)}
// Output: a JSON array of token strings, in order.
'use strict';
const { RtmTokenBuilder, RtmRole } = require('agora-access-token');
const { AccessToken: AccessToken006, priviledges } = require('agora-access-token/src/AccessToken');
const { RtmTokenBuilder: RtmTokenBuilder2 } = require('agora-token');
const { AccessToken2, ServiceRtm } = require('agora-token/src/AccessToken2');

const now = Math.floor(Date.now() / 1000);
const reqs = JSON.parse(process.argv[2]);
const out = reqs.map((r) => {
  if (r.v === '006' && (r.ts !== undefined || r.privilege_ts !== undefined)) {
    // What RtmTokenBuilder.buildToken does, with ts and the privilege as given.
    const key = new AccessToken006(r.appid, r.cert, r.uid, '');
    if (r.ts !== undefined) key.ts = r.ts;
    key.addPriviledge(priviledges.kRtmLogin,
      r.privilege_ts !== undefined ? r.privilege_ts : now + r.expire);
    return key.build();
  }
  if (r.v === '006') {
    return RtmTokenBuilder.buildToken(r.appid, r.cert, r.uid, RtmRole.Rtm_User, now + r.expire);
  }
  if (r.issue_ts === undefined) {
    return RtmTokenBuilder2.buildToken(r.appid, r.cert, r.uid, r.expire);
  }
  const t = new AccessToken2(r.appid, r.cert, r.issue_ts, r.expire);
  const s = new ServiceRtm(r.uid);
  s.add_privilege(ServiceRtm.kPrivilegeLogin, r.expire);
  t.add_service(s);
  return t.build();
});
process.stdout.write(JSON.stringify(out));
