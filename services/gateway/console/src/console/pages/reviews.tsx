// QA view: closed conversations with their customer rating; read the transcript and
// score it.

import { useState } from 'preact/hooks';
import type { Session, User } from '../../shared/types';
import { errorMessage, toFormErrors, type FormErrors } from '../../shared/forms';
import { api, customerName, fmtTime, locale, navigate, toast, useStore, useT } from '../core';
import { Avatar, Button, Empty, Field, FormError, LoadError, Stars, useLoad } from '../ui';
import { Conversation } from './conversation';

export function ReviewsPage({ user, id, canReview }: { user: User; id?: string; canReview: boolean }) {
  const t = useT();
  const l = useStore(locale);
  const list = useLoad(() => api.get<{ sessions: Session[] }>('/api/v1/sessions', { status: 'closed', limit: 100 }).then((r) => r.sessions), [id]);
  return (
    <div class="inbox reviews">
      <section class="conv-list" data-testid="review-list">
        <div class="list-head">
          <h3>{t.t('reviews.title')}</h3>
          <p class="muted small">{t.t('reviews.subtitle')}</p>
        </div>
        <div class="conv-items">
          {list.error ? <LoadError error={errorMessage(list.error, t)} onRetry={list.reload} /> : null}
          {list.data && list.data.length === 0 ? <Empty icon="star" title={t.t('reviews.empty')} /> : null}
          {(list.data ?? []).map((s) => (
            <a
              href={`/reviews/${s.id}`}
              class={`conv-item${s.id === id ? ' active' : ''}`}
              data-testid="review-item"
              data-session={s.id}
              onClick={(e) => {
                e.preventDefault();
                navigate(`/reviews/${s.id}`);
              }}
            >
              <Avatar name={customerName(t, s)} size={38} />
              <div class="conv-item-body">
                <div class="conv-item-top">
                  <span class="conv-item-name">{customerName(t, s)}</span>
                  <span class="conv-item-time">{fmtTime(s.closed_at ?? s.created_at, l)}</span>
                </div>
                <div class="conv-item-bottom">
                  {s.csat ? (
                    <span data-testid="review-csat">
                      <Stars score={s.csat.score} size={12} />
                    </span>
                  ) : (
                    <span class="muted small">{t.t('reviews.no_csat')}</span>
                  )}
                </div>
              </div>
            </a>
          ))}
        </div>
      </section>
      {id ? (
        <div class="review-main">
          <Conversation sessionId={id} user={user} mode="review" />
          {canReview ? <ReviewForm sessionId={id} /> : null}
        </div>
      ) : (
        <div class="conv-placeholder">
          <Empty icon="star" title={t.t('reviews.subtitle')} />
        </div>
      )}
    </div>
  );
}

interface Review {
  id: string;
  reviewer_id: string;
  score: number;
  comment: string;
  created_at: string;
}

function ReviewForm({ sessionId }: { sessionId: string }) {
  const t = useT();
  const l = useStore(locale);
  const [score, setScore] = useState(80);
  const [comment, setComment] = useState('');
  const [errs, setErrs] = useState<FormErrors>({ fields: {} });
  const [busy, setBusy] = useState(false);
  const reviews = useLoad(() => api.get<{ reviews: Review[] }>(`/api/v1/sessions/${sessionId}/reviews`).then((r) => r.reviews), [sessionId]);
  const submit = async () => {
    setBusy(true);
    setErrs({ fields: {} });
    try {
      await api.post(`/api/v1/sessions/${sessionId}/reviews`, { score, comment });
      toast(t.t('reviews.done'));
      setComment('');
      reviews.reload();
    } catch (e) {
      setErrs(toFormErrors(e, ['score', 'comment'], t));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="review-form card" data-testid="review-form">
      {reviews.data && reviews.data.length ? (
        <ul class="review-list">
          {reviews.data.map((r) => (
            <li>
              <span class={`score-badge${r.score >= 80 ? ' good' : r.score < 60 ? ' bad' : ''}`}>{r.score}</span>
              <span>{r.comment || <span class="muted">—</span>}</span>
              <span class="muted small">{fmtTime(r.created_at, l)}</span>
            </li>
          ))}
        </ul>
      ) : null}
      <div class="review-inputs">
        <FormError text={errs.form} />
        <Field label={`${t.t('reviews.score')} (0–100)`} error={errs.fields.score} id="review-score">
          <div class="score-input">
            <input type="range" min={0} max={100} step={5} value={score} onInput={(e) => setScore(Number((e.target as HTMLInputElement).value))} />
            <input id="review-score" type="number" min={0} max={100} value={score} onInput={(e) => setScore(Number((e.target as HTMLInputElement).value))} class="narrow" />
          </div>
        </Field>
        <Field label={t.t('reviews.comment')} error={errs.fields.comment} id="review-comment">
          <textarea id="review-comment" rows={1} value={comment} onInput={(e) => setComment((e.target as HTMLTextAreaElement).value)} />
        </Field>
        <Button variant="primary" busy={busy} onClick={submit}>
          {t.t('reviews.submit')}
        </Button>
      </div>
    </div>
  );
}
