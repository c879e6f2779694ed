// Shapes of the Helmdesk API (docs/api.md, docs/websocket.md).

export type Role = 'admin' | 'supervisor' | 'agent' | 'qa';
export type SessionStatus = 'queued' | 'assigned' | 'closed';
export type SenderType = 'customer' | 'agent' | 'bot' | 'system';

export interface User {
  id: string;
  email: string;
  name: string;
  role: Role;
  max_sessions: number;
  groups: string[];
  disabled: boolean;
  created_at: string;
}

export interface Sender {
  type: SenderType;
  id: string;
}

export interface MessageFrame {
  type: 'message';
  session_id: string;
  seq: number;
  client_msg_id: string;
  sender: Sender;
  text: string;
  created_at: string;
}

export interface CSAT {
  score: number;
  comment?: string;
  submitted_at?: string;
}

export interface Session {
  id: string;
  customer_id: string;
  user_id: string;
  channel: string;
  page_url: string;
  profile: Record<string, unknown> | null;
  status: SessionStatus;
  agent_id: string;
  group: string;
  last_seq: number;
  created_at: string;
  assigned_at?: string;
  closed_at?: string;
  queue_position?: number;
  closed_by?: string;
  csat?: CSAT | null;
}

export interface SessionFrame {
  type: 'session';
  session_id: string;
  status: SessionStatus;
  agent_id: string;
  queue_position?: number;
  csat_requested?: boolean;
}

export interface AckFrame {
  type: 'ack';
  client_msg_id: string;
  session_id?: string;
}

export interface ResumedFrame {
  type: 'resumed';
  session_id: string;
  last_seq: number;
  history?: boolean;
}

export interface ErrorFrame {
  type: 'error';
  code: string;
  message: string;
  client_msg_id?: string;
  session_id?: string;
}

export interface TypingFrame {
  type: 'typing';
  session_id: string;
  sender: Sender;
  state: 'start' | 'stop';
}

export interface ReadFrame {
  type: 'read';
  session_id: string;
  sender: Sender;
  seq: number;
}

export type ServerFrame = MessageFrame | SessionFrame | AckFrame | ResumedFrame | ErrorFrame | TypingFrame | ReadFrame;

export interface WidgetTriggers {
  click: boolean;
  auto_open_after_seconds: number;
  page_patterns: string[];
}

export interface WebSettings {
  color: string;
  position: 'right' | 'left';
  title: string;
  greeting: string;
  triggers: WidgetTriggers;
}

export interface Channel {
  id: string;
  type: 'web';
  name: string;
  key: string;
  web: WebSettings;
  embed_code: string;
  created_at: string;
  updated_at?: string;
}

export interface WidgetConfig {
  channel_id: string;
  name: string;
  web: WebSettings;
}
