// The widget's stylesheet, scoped by its Shadow DOM: nothing leaks in or out.

export function widgetCSS(color: string, onColor: string): string {
  return `
:host { all: initial; }
* { box-sizing: border-box; }
.hd { --hd-c: ${color}; --hd-on: ${onColor}; font: 14px/1.45 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif; color: #1f2328; -webkit-font-smoothing: antialiased; }
.hd button { font: inherit; cursor: pointer; }
.launcher { position: fixed; bottom: 20px; width: 58px; height: 58px; border-radius: 50%; border: 0; background: var(--hd-c); color: var(--hd-on); box-shadow: 0 6px 20px rgba(15, 23, 42, .28); display: grid; place-items: center; z-index: 2147483000; transition: transform .15s ease, box-shadow .15s ease; }
.launcher:hover { transform: translateY(-2px) scale(1.03); box-shadow: 0 10px 26px rgba(15, 23, 42, .32); }
.launcher:focus-visible { outline: 3px solid rgba(31, 111, 235, .45); outline-offset: 3px; }
.launcher svg { width: 28px; height: 28px; }
.right .launcher, .right .panel { right: 20px; }
.left .launcher, .left .panel { left: 20px; }
.badge { position: absolute; top: -2px; right: -2px; min-width: 20px; height: 20px; padding: 0 6px; border-radius: 10px; background: #e5484d; color: #fff; font-size: 12px; font-weight: 600; display: none; align-items: center; justify-content: center; border: 2px solid #fff; }
.badge.on { display: flex; }
.panel { position: fixed; bottom: 92px; width: 376px; height: min(600px, calc(100vh - 120px)); background: #fff; border-radius: 16px; box-shadow: 0 16px 48px rgba(15, 23, 42, .22), 0 2px 8px rgba(15, 23, 42, .08); display: flex; flex-direction: column; overflow: hidden; z-index: 2147483001; opacity: 0; transform: translateY(12px) scale(.98); pointer-events: none; transition: opacity .18s ease, transform .18s ease; }
.open .panel { opacity: 1; transform: none; pointer-events: auto; }
.preview .panel, .preview .launcher { position: absolute; }
.preview .panel { height: calc(100% - 112px); max-width: calc(100% - 40px); }
.head { background: var(--hd-c); color: var(--hd-on); padding: 18px 18px 16px; display: flex; align-items: flex-start; gap: 12px; }
.avatar { width: 38px; height: 38px; border-radius: 50%; background: rgba(255,255,255,.22); display: grid; place-items: center; flex: none; }
.avatar svg { width: 20px; height: 20px; }
.titles { flex: 1; min-width: 0; }
.title { font-size: 16px; font-weight: 650; margin: 0; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.sub { font-size: 12.5px; opacity: .88; margin-top: 2px; }
.x { background: transparent; border: 0; color: inherit; width: 32px; height: 32px; border-radius: 8px; display: grid; place-items: center; opacity: .9; }
.x:hover { background: rgba(255,255,255,.16); opacity: 1; }
.x svg { width: 18px; height: 18px; }
.conn { display: none; padding: 7px 14px; font-size: 12.5px; background: #fff8c5; color: #6e5200; border-bottom: 1px solid #f0e2a0; }
.conn.on { display: block; }
.conn.bad { background: #ffebe9; color: #a40e26; border-color: #ffcecb; }
.log { flex: 1; overflow-y: auto; padding: 16px 14px 8px; background: #f7f8fa; display: flex; flex-direction: column; gap: 6px; scroll-behavior: smooth; }
.row { display: flex; flex-direction: column; max-width: 82%; }
.row.me { align-self: flex-end; align-items: flex-end; }
.row.them { align-self: flex-start; align-items: flex-start; }
.bubble { padding: 9px 13px; border-radius: 16px; white-space: pre-wrap; word-wrap: break-word; overflow-wrap: anywhere; }
.me .bubble { background: var(--hd-c); color: var(--hd-on); border-bottom-right-radius: 5px; }
.them .bubble { background: #fff; color: #1f2328; border: 1px solid #e6e8eb; border-bottom-left-radius: 5px; }
.meta { font-size: 11px; color: #8b949e; margin: 2px 4px 4px; }
.pending .bubble { opacity: .65; }
.failed .bubble { background: #ffebe9; color: #a40e26; }
.failed .meta button { background: none; border: 0; color: #0969da; padding: 0 0 0 4px; text-decoration: underline; font-size: 11px; }
.sys { align-self: center; font-size: 12px; color: #6e7781; background: #eef0f3; padding: 4px 10px; border-radius: 10px; margin: 4px 0; text-align: center; max-width: 90%; }
.typing { display: none; align-self: flex-start; background: #fff; border: 1px solid #e6e8eb; border-radius: 16px; padding: 10px 14px; gap: 4px; }
.typing.on { display: inline-flex; }
.typing i { width: 6px; height: 6px; border-radius: 50%; background: #8b949e; animation: hd-b 1.2s infinite ease-in-out; }
.typing i:nth-child(2) { animation-delay: .15s; } .typing i:nth-child(3) { animation-delay: .3s; }
@keyframes hd-b { 0%, 80%, 100% { transform: translateY(0); opacity: .5 } 40% { transform: translateY(-4px); opacity: 1 } }
.compose { display: flex; align-items: flex-end; gap: 8px; padding: 10px 12px; border-top: 1px solid #eceef1; background: #fff; }
.compose textarea { flex: 1; resize: none; border: 1px solid #d0d7de; border-radius: 12px; padding: 9px 12px; font: inherit; color: inherit; max-height: 120px; min-height: 40px; outline: none; background: #fff; }
.compose textarea:focus { border-color: var(--hd-c); box-shadow: 0 0 0 3px rgba(31,111,235,.12); }
.send { width: 40px; height: 40px; border-radius: 12px; border: 0; background: var(--hd-c); color: var(--hd-on); display: grid; place-items: center; flex: none; }
.send:disabled { opacity: .4; cursor: default; }
.send svg { width: 18px; height: 18px; }
.foot { text-align: center; font-size: 11px; color: #8b949e; padding: 0 0 8px; background: #fff; }
.csat { display: none; padding: 16px; border-top: 1px solid #eceef1; background: #fff; text-align: center; }
.csat.on { display: block; }
.csat h4 { margin: 0 0 10px; font-size: 14px; font-weight: 600; }
.stars { display: flex; justify-content: center; gap: 6px; margin-bottom: 10px; }
.star { background: none; border: 0; padding: 2px; color: #d0d7de; transition: transform .1s; }
.star svg { width: 30px; height: 30px; }
.star.on { color: #f5a623; }
.star:hover { transform: scale(1.12); }
.csat textarea { width: 100%; border: 1px solid #d0d7de; border-radius: 10px; padding: 8px 10px; font: inherit; resize: none; height: 56px; margin-bottom: 10px; }
.btn { border: 0; background: var(--hd-c); color: var(--hd-on); border-radius: 10px; padding: 9px 16px; font-weight: 600; }
.btn:disabled { opacity: .5; }
.link { background: none; border: 0; color: #57606a; margin-left: 8px; }
.done { color: #1a7f37; font-weight: 600; }
.err { color: #a40e26; font-size: 12.5px; margin-top: 6px; }
.again { display: none; padding: 12px; text-align: center; border-top: 1px solid #eceef1; background: #fff; }
.again.on { display: block; }
@media (max-width: 480px) {
  .hd:not(.preview) .panel { left: 0 !important; right: 0 !important; bottom: 0; top: 0; width: 100%; height: 100%; border-radius: 0; }
  .hd.open:not(.preview) .launcher { display: none; }
}
`;
}
